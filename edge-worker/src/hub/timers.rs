//! The Hub's one alarm and what rings it: the runner's lease on a running plan, and a report to the
//! tenant's stream directory that had to wait for its interval. An alarm does not keep the Hub
//! awake while it waits.

use herald_core::directory::Entry;
use herald_core::TenantId;
use worker::wasm_bindgen_futures::spawn_local;
use worker::{console_error, Env, ScheduledTime, Storage};

use super::Hub;
use crate::config::Config;
use crate::directory::{self, HubAction, HubReport};
use crate::error::{ApiError, ApiResult};
use crate::storage::NAME;
use crate::stream::now_ms;

impl Hub {
    /// Sets the alarm for the end of the runner's lease on the running plan (each accepted move
    /// renews it). The alarm only checks; a plan that ended meanwhile makes it do nothing.
    pub(super) async fn arm_lease(&self, config: &Config) -> ApiResult<()> {
        if let Some(at_ms) = self.alarm_at_ms(config, None) {
            self.state.storage().set_alarm(alarm_time(at_ms)).await?;
        }
        Ok(())
    }
    /// When the Hub's one alarm must ring: the earliest of the runner's lease end, a directory
    /// report that waits, and `also_ms`.
    pub(super) fn alarm_at_ms(&self, config: &Config, also_ms: Option<u64>) -> Option<u64> {
        let lease_ms = config.plan_lease_s.saturating_mul(1000);
        let lease = self
            .with_loaded(|loaded| {
                Ok(loaded
                    .plan
                    .as_ref()
                    .and_then(|plan| plan.lease_deadline_ms(lease_ms)))
            })
            .ok()
            .flatten();
        let report = self
            .directory
            .borrow()
            .as_ref()
            .and_then(HubReport::pending_at_ms);
        [lease, report, also_ms].into_iter().flatten().min()
    }
    /// Tells the tenant's directory about this hub if its entry changed (at most once per
    /// `HERALD_DIRECTORY_REPORT_MS`; a change within the interval sets the alarm for its end). The
    /// report is sent without holding up the call that changed the hub; one that fails is logged,
    /// and the hub's next change reports again.
    pub(super) fn report_to_directory(&self, config: &Config) {
        if let Some(work) = self.directory_work(config) {
            spawn_local(work.run());
        }
    }
    /// [`Hub::report_to_directory`] for the handlers that no request waits on (a relay's close,
    /// the alarm): the report or the alarm is done before the handler returns, so the runtime
    /// cannot evict the hub with it unsent.
    pub(super) async fn report_to_directory_now(&self, config: &Config) {
        if let Some(work) = self.directory_work(config) {
            work.run().await;
        }
    }
    /// What the directory needs from this hub now, if anything.
    fn directory_work(&self, config: &Config) -> Option<DirectoryWork> {
        // A busy hub reads its state (its sockets, its last id) at most once an interval: the
        // alarm that a waiting report set reads it when it rings.
        if self.with_report(config, |report| report.alarm_pending(now_ms())) {
            return None;
        }
        let (last_event_id, complete) = self
            .with_loaded(|loaded| {
                Ok((
                    loaded.hub.summary().last_position().map(|p| p.to_string()),
                    loaded.hub.is_complete(),
                ))
            })
            .ok()?;
        let subscribers = self.subscriber_count();
        let action = self.with_report(config, |report| {
            report.next(subscribers, last_event_id, complete, now_ms())
        });
        match action {
            HubAction::Send { tenant, entry } => Some(DirectoryWork::Send {
                env: self.env.clone(),
                tenant,
                entry,
            }),
            HubAction::Alarm(at_ms) => Some(DirectoryWork::Alarm {
                storage: self.state.storage(),
                at_ms: self.alarm_at_ms(config, Some(at_ms)).unwrap_or(at_ms),
            }),
            HubAction::Nothing => None,
        }
    }
    /// Ends a plan whose lease has run out; if the runner reported meanwhile, sets the alarm anew.
    pub(super) async fn check_lease(&self, config: &Config) -> ApiResult<()> {
        self.ensure_loaded(config)?;
        self.expire_lease(config)?;
        self.arm_lease(config).await
    }
    /// Fails the running plan (or completes its cancel) if its runner's lease has ended.
    pub(super) fn expire_lease(&self, config: &Config) -> ApiResult<()> {
        let lease_ms = config.plan_lease_s.saturating_mul(1000);
        let now = now_ms();
        let due = self.with_loaded(|loaded| {
            Ok(loaded
                .plan
                .as_ref()
                .and_then(|plan| plan.lease_deadline_ms(lease_ms))
                .is_some_and(|deadline| now >= deadline))
        })?;
        if due {
            self.plan_step(config, |session, now| {
                session
                    .expire_lease(now, lease_ms)
                    .ok_or_else(|| ApiError::Internal("the plan's lease had not ended".into()))
            })?;
        }
        Ok(())
    }
    /// Runs `f` on this hub's directory reporter, made at first use.
    pub(super) fn with_report<T>(&self, config: &Config, f: impl FnOnce(&mut HubReport) -> T) -> T {
        let mut directory = self.directory.borrow_mut();
        f(directory.get_or_insert_with(|| HubReport::new(config.directory_report_ms)))
    }
    /// Learns the hub's name from a call, and stores it once, for a woken hub's directory reports.
    pub(super) fn learn_name(&self, config: &Config, name: &str) -> ApiResult<()> {
        self.with_report(config, |report| report.learn_name(name));
        self.with_loaded(|loaded| {
            if !loaded.name_stored {
                loaded.store.set_meta(NAME, name)?;
                loaded.name_stored = true;
            }
            Ok(())
        })
    }
}

/// The alarm's time for `at_ms` (Unix ms): an absolute date, not workers-rs's offset from now.
fn alarm_time(at_ms: u64) -> ScheduledTime {
    ScheduledTime::new(js_sys::Date::new(&(at_ms as f64).into()))
}

/// A directory report to send, or the alarm that sends it when its interval ends.
enum DirectoryWork {
    Send {
        env: Env,
        tenant: TenantId,
        entry: Entry,
    },
    Alarm {
        storage: Storage,
        at_ms: u64,
    },
}

impl DirectoryWork {
    /// Sends the report or sets the alarm; a failure is logged (the hub's next change reports
    /// again).
    async fn run(self) {
        match self {
            DirectoryWork::Send { env, tenant, entry } => {
                if let Err(error) = directory::report(&env, &tenant, &entry).await {
                    console_error!("directory report not sent: {error}");
                }
            }
            DirectoryWork::Alarm { storage, at_ms } => {
                if let Err(error) = storage.set_alarm(alarm_time(at_ms)).await {
                    console_error!("directory alarm not set: {error}");
                }
            }
        }
    }
}
