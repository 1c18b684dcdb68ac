//! Runtime settings, read from the Worker's environment (`[vars]` in wrangler.toml, secrets, `.dev.vars`).
//! Every limit has a documented default; a value that does not parse is a deployment error, reported
//! as a 500 naming the variable rather than silently replaced.

use herald_core::{
    LogLimits, OutboxLimits, PublishLimits, VerifyOptions, Vocabulary, DEFAULT_HEARTBEAT_MS,
};
use worker::Env;

use crate::error::{ApiError, ApiResult};

/// The most hibernatable WebSockets the runtime lets one Durable Object accept.
const SOCKETS_PER_OBJECT_MAX: u64 = 32_768;

/// Settings shared by the Worker and the Hub.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) heartbeat_ms: u64,
    pub(crate) retry_ms: u64,
    pub(crate) log: LogLimits,
    pub(crate) outbox: OutboxLimits,
    pub(crate) publish: PublishLimits,
    pub(crate) ticket_ttl_s: u64,
    /// How tokens and tickets are checked: at most `HERALD_TOKEN_LIFETIME_MAX_S` from `iat` (or from
    /// now) to `exp`, and no `iat` in the future.
    pub(crate) verify: VerifyOptions,
    /// The most open subscribers one hub (one stream) holds: each is one hibernatable WebSocket,
    /// and the runtime takes at most 32,768 per object.
    pub(crate) subscribers_max: usize,
    /// The longest one SSE response stays open; then the Worker ends it after a whole frame and the
    /// client resumes with `Last-Event-ID`. It bounds the CPU one invocation can spend.
    pub(crate) stream_max_age_s: u64,
    pub(crate) cors_origins: Vec<String>,
    pub(crate) categories: &'static [&'static str],
}

fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.trim().is_empty())
}

fn number(env: &Env, name: &'static str, default: u64) -> ApiResult<u64> {
    match var(env, name) {
        None => Ok(default),
        Some(text) => text.trim().parse().map_err(|_| {
            ApiError::Internal(format!("{name} must be a whole number, got {text:?}"))
        }),
    }
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

/// The category vocabulary, read once per isolate: herald-core's `Vocabulary` borrows `'static`
/// lists, and `HERALD_CATEGORIES` cannot change while an isolate lives, so it is leaked exactly once.
fn categories(env: &Env) -> &'static [&'static str] {
    static CATEGORIES: std::sync::OnceLock<&'static [&'static str]> = std::sync::OnceLock::new();
    CATEGORIES.get_or_init(|| match list(env, "HERALD_CATEGORIES") {
        None => Vocabulary::DASHTAM_CATEGORIES,
        Some(names) => {
            let names: Vec<&'static str> = names
                .into_iter()
                .map(|n| &*Box::leak(n.into_boxed_str()))
                .collect();
            Box::leak(names.into_boxed_slice())
        }
    })
}

impl Config {
    /// The settings, read from the environment once per isolate: every request used to pay a dozen
    /// calls into JS for values that cannot change while the isolate lives (a deploy starts new ones).
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
        let log = LogLimits {
            events_max: number(env, "HERALD_LOG_EVENTS_MAX", log_defaults.events_max as u64)?
                as usize,
            bytes_max: number(env, "HERALD_LOG_BYTES_MAX", log_defaults.bytes_max as u64)? as usize,
        };
        // A subscriber's queue must hold a whole replay of the log plus some live frames, or a resume
        // from the oldest id would overflow it at once; so its defaults derive from the log's limits.
        let outbox = OutboxLimits {
            frames_max: number(
                env,
                "HERALD_QUEUE_FRAMES_MAX",
                (log.events_max + 256) as u64,
            )? as usize,
            bytes_max: number(
                env,
                "HERALD_QUEUE_BYTES_MAX",
                (log.bytes_max + 256 * 1024) as u64,
            )? as usize,
        };
        let publish = PublishLimits {
            event_bytes_max: number(
                env,
                "HERALD_EVENT_BYTES_MAX",
                publish_defaults.event_bytes_max as u64,
            )? as usize,
            batch_events_max: number(
                env,
                "HERALD_BATCH_EVENTS_MAX",
                publish_defaults.batch_events_max as u64,
            )? as usize,
            batch_bytes_max: number(
                env,
                "HERALD_BATCH_BYTES_MAX",
                publish_defaults.batch_bytes_max as u64,
            )? as usize,
        };
        Ok(Config {
            heartbeat_ms: number(env, "HERALD_HEARTBEAT_MS", DEFAULT_HEARTBEAT_MS)?.max(100),
            retry_ms: number(env, "HERALD_RETRY_MS", 3000)?,
            log,
            outbox,
            publish,
            ticket_ttl_s: number(env, "HERALD_TICKET_TTL_S", 300)?.max(1),
            verify: VerifyOptions {
                lifetime_max_s: number(
                    env,
                    "HERALD_TOKEN_LIFETIME_MAX_S",
                    VerifyOptions::LIFETIME_MAX_S_DEFAULT,
                )?
                .max(1),
                ..VerifyOptions::default()
            },
            subscribers_max: number(env, "HERALD_SUBSCRIBERS_MAX", 10_000)?
                .min(SOCKETS_PER_OBJECT_MAX) as usize,
            stream_max_age_s: number(env, "HERALD_STREAM_MAX_AGE_S", 900)?.max(1),
            cors_origins: list(env, "HERALD_CORS_ORIGINS").unwrap_or_default(),
            categories: categories(env),
        })
    }

    /// The HMAC key tokens are signed with: a secret in production, `.dev.vars` locally. Read once per
    /// isolate, like the rest of the settings.
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
