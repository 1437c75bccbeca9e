//! Assembly: the engine built from the builder's settings.
//!
//! Besides filling [`Core`]'s fields, this wires the observer through which the
//! connector reports to the sink: each attempt a retry layer retries on its own
//! (which becomes the state's `last_error`) and the byte counters of the socket
//! it opened (which the keepalive reads).

use std::sync::Arc;

use tokio::sync::watch;

use super::books::Books;
use super::builder::Settings;
use super::confirm::Confirmation;
use super::driver::Core;
use super::inbound::Inbox;
use super::lifecycle::{Config, History, State, Timing};
use super::state::ConnectionState;
use super::stats::StatsHandle;
use super::waker::{Fanout, Signals};
use crate::connect::MakeConnection;
use crate::limit::ReconnectBudget;
use crate::request::{AttemptReport, Target};

impl<M: MakeConnection> Core<M> {
    pub(super) fn new(
        make: M,
        target: Target,
        settings: Settings,
        limiter: Option<ReconnectBudget>,
        wakers: Arc<Fanout>,
    ) -> Self {
        let state_tx = Arc::new(watch::Sender::new(ConnectionState::Idle));
        // A retry layer in the stack retries failed attempts that the sink does not see:
        // it tells of each, which becomes the state's `last_error` while reconnecting.
        // The connector hands over the counters of the socket it opened: the keepalive
        // reads them.
        let observed = Arc::clone(&state_tx);
        let record = History::default();
        let handed = Arc::clone(&record.handed);
        let target =
            target.with_observer(Arc::new(move |report: AttemptReport<'_>| match report {
                AttemptReport::Retrying(failure) => {
                    observed.send_if_modified(|state| match state {
                        ConnectionState::Reconnecting {
                            attempt,
                            last_error,
                        }
                        | ConnectionState::Connecting {
                            attempt,
                            last_error,
                        } => {
                            *attempt += 1;
                            *last_error = Some(failure.to_string());
                            true
                        }
                        _ => false,
                    });
                }
                AttemptReport::Connected { progress } => {
                    *handed.lock().unwrap_or_else(|p| p.into_inner()) = Some(progress);
                }
            }));
        Core {
            books: Books::new(
                settings.outbox,
                Inbox::new(settings.inbox_capacity),
                settings.acks,
                Confirmation::new(settings.confirm_by),
                StatsHandle::new(&target),
            ),
            make,
            target,
            state: State::Idle,
            config: Config {
                hello: settings.hello,
                retain: settings.retain,
                timing: Timing {
                    healthy_after: settings.healthy_after,
                    close_timeout: settings.close_timeout,
                    reconnect_jitter: settings.reconnect_jitter,
                    keepalive: settings.keepalive,
                },
                close_policy: settings.close_policy,
                limiter,
            },
            record,
            signals: Signals::new(wakers, state_tx),
        }
    }
}
