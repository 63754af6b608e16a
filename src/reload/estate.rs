//! What a reload changes beyond the snapshot: the tasks and outputs the server
//! config starts. After a reload's snapshot serves, [`Estate::apply`] makes the
//! `[[secondary]]` refresh tasks those of the new config (`secondary::Running`)
//! and, when `[dnstap]` changed, starts the new output, swaps it in and stops
//! the old one (what it holds is written first, off the reload's way). A
//! config that does not load never gets here: the old tasks and output keep
//! running, as the old snapshot keeps serving.

use std::sync::{Arc, Mutex};

use tracing::{info, warn};

use crate::config::dnstap::DnstapConfig;
use crate::config::ServerConfig;
use crate::secondary::Running;
use crate::server::dnstap::Tap;
use crate::server::querylog::QueryLog;

/// The secondary tasks and the dnstap output a config asks for.
pub struct Estate {
    pub secondaries: Arc<Running>,
    qlog: Arc<QueryLog>,
    dnstap: Mutex<Option<DnstapConfig>>,
}

impl Estate {
    /// `qlog` holds the output `dnstap` started (or none).
    pub fn new(
        secondaries: Arc<Running>,
        qlog: Arc<QueryLog>,
        dnstap: Option<DnstapConfig>,
    ) -> Arc<Estate> {
        Arc::new(Estate {
            secondaries,
            qlog,
            dnstap: Mutex::new(dnstap),
        })
    }

    /// Applies a reloaded config. Runs on the reload's blocking thread, in the
    /// runtime's context.
    pub fn apply(&self, cfg: &ServerConfig) {
        self.secondaries.apply(&cfg.secondaries);
        let Ok(mut running) = self.dnstap.lock() else {
            return;
        };
        if *running == cfg.dnstap {
            return;
        }
        let new = match cfg.dnstap.clone().map(Tap::start).transpose() {
            Ok(t) => t,
            Err(e) => {
                warn!("cannot start the new dnstap output ({e}); the old one keeps running");
                return;
            }
        };
        let on = new.is_some();
        if let Some(old) = self.qlog.set_dnstap(new) {
            let _ = std::thread::Builder::new()
                .name("dnstap-stop".into())
                .spawn(move || old.stop());
        }
        info!(
            "dnstap output {} by a reload",
            if on { "(re)started" } else { "stopped" }
        );
        *running = cfg.dnstap.clone();
    }

    /// Stops the dnstap output (at shutdown, after the DNS sockets): what it
    /// holds is written first.
    pub fn stop_dnstap(&self) {
        if let Some(t) = self.qlog.set_dnstap(None) {
            t.stop();
        }
    }
}
