//! Falling back to plain mode when a server does not speak resume mode and
//! [`ResumeConfig::required`] is `false`: on the first dial, or on a reconnection that
//! finds the server replaced by one without it.
//!
//! A refusal of the subprotocol is permanent for the sink underneath: it fails as it
//! does for any permanent refusal (messages sent with an outcome fail, handing the
//! message back). When resume mode is not required, this layer then switches to plain
//! mode and dials again at once, as [`ResumingSink::dial`] would. Switching:
//!
//! - the sink's own frames still queued (ACK, PROMPT, REPLAY, BYE) are dropped: they
//!   mean nothing to a plain server;
//! - the messages kept for the session stay, untracked: they are written to the new
//!   server as the application sent them. Resume mode's once-only promise ends at the
//!   switch: the old server may have had some of them, and what it had not yet sent is
//!   lost;
//! - each half is told once, with [`Error::ResumeUnsupported`]: the reader at the place
//!   in its stream where resume mode ended (after the messages of the session already
//!   received), the writer at its next operation, unless it met the refusal itself.
//!   A switch before any connection in resume mode (the first dial's) tells no one:
//!   there was no session.
//!
//! A `close()` that meets the refusal does not switch, nor does either half after it
//! until the application dials again: it reports [`Error::ResumeUnsupported`], and the
//! sink stops with what it kept (for `take_undelivered`), as with resume mode required.

use std::sync::atomic::Ordering;

use crate::connect::MakeConnection;
use crate::error::Error;
use crate::sink::Half;

use super::*;

/// Where each half stands after a switch to plain mode.
#[derive(Debug, Default)]
pub(super) struct Switch {
    /// The reader reads plain messages. Until then it reads resume mode's frames, up to
    /// the [`Error::ResumeUnsupported`] item queued at the switch.
    pub(super) reader_plain: bool,
    /// The writer has yet to be told: its next operation returns
    /// [`Error::ResumeUnsupported`], once.
    pub(super) writer_untold: bool,
    /// A `close()` met the refusal: no switch until the application dials again.
    pub(super) stopped_by_close: bool,
}

impl<M: MakeConnection> ResumingSink<M> {
    /// An error from the sink underneath, as this layer reports it to `half`: a refusal
    /// of the subprotocol reads as [`Error::ResumeUnsupported`] and, when resume mode is
    /// not required, switches to plain mode and dials again (see the
    /// [module docs](self)). `None`: switched before any connection in resume mode, with
    /// nothing to tell; the caller polls again, in plain mode.
    pub(super) fn screen(&mut self, error: Error, half: Half) -> Option<Error> {
        if !is_unsupported(&error) {
            return Some(error);
        }
        if self.config.required
            || self.switch.stopped_by_close
            || self.plain.load(Ordering::Relaxed)
        {
            return Some(Error::ResumeUnsupported);
        }
        let had_session = self.fall_back(half);
        self.inner.redial();
        had_session.then_some(Error::ResumeUnsupported)
    }

    /// Plain mode from now on, for this sink's connections and (once it has read what
    /// came before) its reader. `met_by`: the half that met the refusal and is told by
    /// its caller. No connection is live. Returns whether a connection in resume mode
    /// came before (then the halves are told).
    fn fall_back(&mut self, met_by: Half) -> bool {
        let had_session = self.inner.stats().connects > 0;
        tracing::warn!(
            had_session,
            "the server does not speak resume mode: plain mode from now on"
        );
        self.plain.store(true, Ordering::Relaxed);
        self.inner.leave_acknowledged_mode();
        if !had_session {
            self.switch.reader_plain = true;
            return false;
        }
        match met_by {
            // After the frames already received: the reader reads them first.
            Half::Write => self.inner.queue_error(Error::ResumeUnsupported),
            // The reader met it with nothing left to read before it.
            Half::Read => {
                self.switch.reader_plain = true;
                self.switch.writer_untold = true;
            }
        }
        true
    }

    /// `Err(ResumeUnsupported)` once for a writer that has not been told of the switch.
    pub(super) fn tell_writer(&mut self) -> Result<(), Error> {
        if std::mem::take(&mut self.switch.writer_untold) {
            return Err(Error::ResumeUnsupported);
        }
        Ok(())
    }
}
