//! Runtime settings, read from the Worker's environment (`[vars]` in wrangler.toml, secrets,
//! `.dev.vars`). Every limit has a documented default and range; a value that does not parse or is
//! out of its range is a deployment error, reported as a 500 naming the variable rather than
//! silently replaced, clamped or truncated (a `usize` is 32 bits on wasm32: every value is checked
//! before it becomes one).

use herald_core::auth::VerifyOptions;
use herald_core::cookie::{SameSite, SessionPolicy};
use herald_core::heartbeat::HEARTBEAT_MS_DEFAULT;
use herald_core::log::LogLimits;
use herald_core::outbox::OutboxLimits;
use herald_core::{directory, PublishLimits, Vocabulary};
use worker::Env;

use crate::error::{ApiError, ApiResult};

/// The most hibernatable WebSockets the runtime lets one Durable Object accept.
const SOCKETS_PER_OBJECT_MAX: u64 = 32_768;

const MIB: u64 = 1024 * 1024;

/// A plan fails when its runner has not reported for this long: two minutes is eight of the
/// runner's 15 s keep-alives (README, SQLMesh), so a runner that is alive never misses it.
const PLAN_LEASE_S_DEFAULT: u64 = 120;

/// 512 KiB: a 1,000-model plan's overview (each model named in `changes` and `backfills`) or apply
/// (each in `backfill.tasks`) takes about 250 KiB; it fits in the replay log (1 MiB) and a
/// subscriber's queue by default.
const TRACKER_BYTES_MAX_DEFAULT: u64 = 512 * 1024;
/// Frames and bytes a subscriber's queue holds beyond a full replay of the log (the control frames
/// before it and live events meanwhile).
const QUEUE_HEADROOM_FRAMES: u64 = 256;
const QUEUE_HEADROOM_BYTES: u64 = 256 * 1024;

/// Settings shared by the Worker and the Hub.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) heartbeat_ms: u64,
    pub(crate) retry_ms: u64,
    pub(crate) log: LogLimits,
    pub(crate) outbox: OutboxLimits,
    pub(crate) publish: PublishLimits,
    pub(crate) ticket_ttl_s: u64,
    /// How tokens and tickets are checked: at most `HERALD_TOKEN_LIFETIME_MAX_S` from `iat` (or
    /// from now) to `exp`, and no `iat` in the future.
    pub(crate) verify: VerifyOptions,
    /// The most open subscribers one hub (one stream) holds: each is one hibernatable WebSocket,
    /// and the runtime takes at most 32,768 per object.
    pub(crate) subscribers_max: usize,
    /// The most open subscribers one credential (one token, one ticket) holds on one stream, so
    /// that one credential cannot take every slot of `subscribers_max`.
    pub(crate) subscribers_per_credential_max: usize,
    /// The longest one SSE response stays open; then the Worker ends it after a whole frame and
    /// the client resumes with `Last-Event-ID`. It bounds the CPU one invocation can spend.
    pub(crate) stream_max_age_s: u64,
    /// How long frames may wait in a relay's queue for a client that takes nothing; then they are
    /// dropped and the stream closes with `lagging`.
    pub(crate) drain_ms_max: u64,
    /// The most bytes all relays of one Worker isolate hold queued together; a relay whose next
    /// frame would pass it is closed with `lagging`.
    pub(crate) isolate_queue_bytes_max: usize,
    pub(crate) cors_origins: Vec<String>,
    /// Browser sessions (`POST /v1/sessions`): `HERALD_SESSION_TTL_S`,
    /// `HERALD_SESSION_LIFETIME_MAX_S`, `HERALD_SESSION_SAMESITE`.
    pub(crate) session: SessionPolicy,
    /// How long a running plan waits for its runner's next report before it fails
    /// (`HERALD_PLAN_LEASE_S`).
    pub(crate) plan_lease_s: u64,
    /// The largest one plan tracker may be, in bytes (`HERALD_TRACKER_BYTES_MAX`): trackers carry
    /// every model of a plan, so they have their own bound, apart from published events'.
    pub(crate) tracker_bytes_max: usize,
    /// The categories publishers may use (`HERALD_CATEGORIES`).
    pub(crate) categories: Vec<String>,
    /// The most often a hub reports to its tenant's stream directory
    /// (`HERALD_DIRECTORY_REPORT_MS`): `GET /v1/streams` is at most this far behind a hub's
    /// last change.
    pub(crate) directory_report_ms: u64,
    /// The most streams a tenant's directory keeps (`HERALD_DIRECTORY_ENTRIES_MAX`); past it, the
    /// entries reported longest ago are dropped.
    pub(crate) directory_entries_max: usize,
    /// Test-only (`HERALD_TEST_HOOKS=1` and `HERALD_TEST_FAIL_STORAGE=<event name>`): the Hub's
    /// append of a batch holding an event of this name fails after writing its rows, as storage
    /// failing mid-write would. Never set in production.
    pub(crate) test_fail_storage: Option<String>,
    /// Test-only (`HERALD_TEST_HOOKS=1` and `HERALD_TEST_UNREADABLE_PLAN=1`): the Hub stores each
    /// plan session nested deeper than it can read back, as plans with deeply nested details once
    /// were. Never set in production.
    pub(crate) test_unreadable_plan: bool,
}

fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.trim().is_empty())
}

fn number(env: &Env, name: &'static str, default: u64) -> ApiResult<u64> {
    bounded(env, name, default, 0, u64::MAX)
}

/// A whole number from `min` to `max` (inclusive), or `default` when the variable is unset or
/// empty.
fn bounded(env: &Env, name: &'static str, default: u64, min: u64, max: u64) -> ApiResult<u64> {
    let Some(text) = var(env, name) else {
        return Ok(default);
    };
    text.trim()
        .parse()
        .ok()
        .filter(|value| (min..=max).contains(value))
        .ok_or_else(|| {
            ApiError::Internal(format!(
                "{name} must be a whole number from {min} to {max}, got {text:?}"
            ))
        })
}

/// [`bounded`] as a `usize`; `max` is at most `u32::MAX`, so the value fits on every target.
fn bounded_size(
    env: &Env,
    name: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> ApiResult<usize> {
    let value = bounded(env, name, default, min, max)?;
    usize::try_from(value)
        .map_err(|_| ApiError::Internal(format!("{name} is {value}, too large for this platform")))
}

fn list(env: &Env, name: &str) -> Option<Vec<String>> {
    var(env, name).map(|text| {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    })
}

/// The categories publishers may use (`HERALD_CATEGORIES`, default Dashtam's).
fn categories(env: &Env) -> Vec<String> {
    list(env, "HERALD_CATEGORIES").unwrap_or_else(|| {
        Vocabulary::DASHTAM_CATEGORIES
            .iter()
            .map(|name| (*name).to_owned())
            .collect()
    })
}

impl Config {
    /// The configured categories, as the list a [`Vocabulary`] borrows.
    pub(crate) fn category_names(&self) -> Vec<&str> {
        self.categories.iter().map(String::as_str).collect()
    }

    /// The settings, read from the environment once per isolate: every request used to pay a dozen
    /// calls into JS for values that cannot change while the isolate lives (a deploy starts new
    /// ones).
    pub(crate) fn get(env: &Env) -> ApiResult<&'static Config> {
        static CONFIG: std::sync::OnceLock<Config> = std::sync::OnceLock::new();
        if let Some(config) = CONFIG.get() {
            return Ok(config);
        }
        let config = Config::from_env(env)?;
        Ok(CONFIG.get_or_init(|| config))
    }

    fn from_env(env: &Env) -> ApiResult<Config> {
        let log_defaults = LogLimits::default();
        let publish_defaults = PublishLimits::default();
        // The ranges keep every derived value far from overflow and every limit inside what one
        // 128 MB isolate can hold: the hub keeps its whole log in memory for a replay.
        let log = LogLimits {
            events_max: bounded_size(
                env,
                "HERALD_LOG_EVENTS_MAX",
                log_defaults.events_max as u64,
                1,
                1_000_000,
            )?,
            bytes_max: bounded_size(
                env,
                "HERALD_LOG_BYTES_MAX",
                log_defaults.bytes_max as u64,
                1,
                64 * MIB,
            )?,
        };
        // A subscriber's queue must hold a whole replay of the log plus some live frames, or a
        // resume from the oldest id would overflow it at once; so its defaults derive from
        // the log's limits.
        let outbox = OutboxLimits {
            frames_max: bounded_size(
                env,
                "HERALD_QUEUE_FRAMES_MAX",
                log.events_max as u64 + QUEUE_HEADROOM_FRAMES,
                1,
                2_000_000,
            )?,
            bytes_max: bounded_size(
                env,
                "HERALD_QUEUE_BYTES_MAX",
                log.bytes_max as u64 + QUEUE_HEADROOM_BYTES,
                1,
                256 * MIB,
            )?,
        };
        let publish = PublishLimits {
            event_bytes_max: bounded_size(
                env,
                "HERALD_EVENT_BYTES_MAX",
                publish_defaults.event_bytes_max as u64,
                1,
                16 * MIB,
            )?,
            batch_events_max: bounded_size(
                env,
                "HERALD_BATCH_EVENTS_MAX",
                publish_defaults.batch_events_max as u64,
                1,
                10_000,
            )?,
            batch_bytes_max: bounded_size(
                env,
                "HERALD_BATCH_BYTES_MAX",
                publish_defaults.batch_bytes_max as u64,
                1,
                16 * MIB,
            )?,
        };
        let test_hooks = var(env, "HERALD_TEST_HOOKS").as_deref() == Some("1");
        let token_lifetime_max_s = number(
            env,
            "HERALD_TOKEN_LIFETIME_MAX_S",
            VerifyOptions::LIFETIME_MAX_S_DEFAULT,
        )?
        .max(1);
        Ok(Config {
            heartbeat_ms: bounded(
                env,
                "HERALD_HEARTBEAT_MS",
                HEARTBEAT_MS_DEFAULT,
                100,
                3_600_000,
            )?,
            retry_ms: bounded(env, "HERALD_RETRY_MS", 3000, 0, 3_600_000)?,
            log,
            outbox,
            publish,
            ticket_ttl_s: bounded(env, "HERALD_TICKET_TTL_S", 300, 1, 86_400)?,
            verify: VerifyOptions {
                lifetime_max_s: token_lifetime_max_s,
                ..VerifyOptions::default()
            },
            subscribers_max: bounded_size(
                env,
                "HERALD_SUBSCRIBERS_MAX",
                10_000,
                1,
                SOCKETS_PER_OBJECT_MAX,
            )?,
            subscribers_per_credential_max: bounded_size(
                env,
                "HERALD_SUBSCRIBERS_PER_CREDENTIAL_MAX",
                100,
                1,
                SOCKETS_PER_OBJECT_MAX,
            )?,
            stream_max_age_s: bounded(env, "HERALD_STREAM_MAX_AGE_S", 900, 1, 86_400)?,
            drain_ms_max: bounded(env, "HERALD_DRAIN_MS_MAX", 30_000, 100, 3_600_000)?,
            // Well under the 128 MB an isolate has, which also holds the runtime's own buffers.
            isolate_queue_bytes_max: bounded_size(
                env,
                "HERALD_ISOLATE_QUEUE_BYTES_MAX",
                32 * MIB,
                64 * 1024,
                100 * MIB,
            )?,
            cors_origins: list(env, "HERALD_CORS_ORIGINS").unwrap_or_default(),
            session: SessionPolicy {
                ttl_s: bounded(
                    env,
                    "HERALD_SESSION_TTL_S",
                    SessionPolicy::TTL_S_DEFAULT,
                    60,
                    86_400,
                )?,
                // A session is verified like a token, so it may not live longer than one.
                lifetime_max_s: bounded(
                    env,
                    "HERALD_SESSION_LIFETIME_MAX_S",
                    SessionPolicy::LIFETIME_MAX_S_DEFAULT,
                    60,
                    2_592_000,
                )?
                .min(token_lifetime_max_s),
                same_site: match var(env, "HERALD_SESSION_SAMESITE") {
                    None => SameSite::Lax,
                    Some(text) => SameSite::parse(&text).ok_or_else(|| {
                        ApiError::Internal(format!(
                            "HERALD_SESSION_SAMESITE must be Strict, Lax or None, got {text:?}"
                        ))
                    })?,
                },
            },
            plan_lease_s: bounded(env, "HERALD_PLAN_LEASE_S", PLAN_LEASE_S_DEFAULT, 5, 86_400)?,
            tracker_bytes_max: bounded_size(
                env,
                "HERALD_TRACKER_BYTES_MAX",
                TRACKER_BYTES_MAX_DEFAULT,
                1,
                16 * MIB,
            )?,
            categories: categories(env),
            directory_report_ms: bounded(
                env,
                "HERALD_DIRECTORY_REPORT_MS",
                directory::REPORT_INTERVAL_MS_DEFAULT,
                100,
                3_600_000,
            )?,
            directory_entries_max: bounded_size(
                env,
                "HERALD_DIRECTORY_ENTRIES_MAX",
                directory::ENTRIES_MAX_DEFAULT as u64,
                1,
                1_000_000,
            )?,
            test_fail_storage: var(env, "HERALD_TEST_FAIL_STORAGE").filter(|_| test_hooks),
            test_unreadable_plan: test_hooks
                && var(env, "HERALD_TEST_UNREADABLE_PLAN").as_deref() == Some("1"),
        })
    }

    /// The HMAC key tokens are signed with: a secret in production, `.dev.vars` locally. Read once
    /// per isolate, like the rest of the settings.
    pub(crate) fn token_key(env: &Env) -> ApiResult<&'static [u8]> {
        static KEY: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        if let Some(key) = KEY.get() {
            return Ok(key);
        }
        let key = Self::read_token_key(env)?;
        Ok(KEY.get_or_init(|| key))
    }

    fn read_token_key(env: &Env) -> ApiResult<Vec<u8>> {
        let key = env
            .secret("HERALD_TOKEN_KEY")
            .map(|s| s.to_string())
            .ok()
            .or_else(|| var(env, "HERALD_TOKEN_KEY"))
            .ok_or_else(|| ApiError::Internal("HERALD_TOKEN_KEY is not set".into()))?;
        if key.len() < 32 {
            return Err(ApiError::Internal(
                "HERALD_TOKEN_KEY must be at least 32 bytes".into(),
            ));
        }
        Ok(key.into_bytes())
    }
}
