//! When a sender asks for an acknowledgement at once (the PROMPT flag on a DATA frame):
//! when nothing else is unacknowledged (a request, or the first message after a quiet
//! spell: someone may be waiting for it), and once per quarter of the window in effect
//! (so that a sender the window holds back learns of room four times per window, not
//! once per message). Every other acknowledgement waits for the receiver's own
//! thresholds or its delay. Pure: no I/O, no clock.

use super::frame::Window;

/// Counts what a sender sent since its last PROMPT; see the [module docs](self).
#[derive(Debug, Clone, Default)]
pub(crate) struct PromptCadence {
    frames: u64,
    bytes: u64,
}

impl PromptCadence {
    /// Whether the next DATA frame, of `len` payload bytes, carries a PROMPT. `idle`:
    /// nothing else is unacknowledged. `window`: the window in effect for this
    /// direction (the receiver's, capped by the sender's own bounds).
    #[inline]
    pub(crate) fn next(&mut self, idle: bool, len: usize, window: Window) -> bool {
        self.frames += 1;
        self.bytes = self.bytes.saturating_add(len as u64);
        let prompt = idle
            || self.frames >= (window.frames / 4).max(1)
            || self.bytes >= (window.bytes / 4).max(1);
        if prompt {
            self.restart();
        }
        prompt
    }

    /// A prompt went out otherwise (a standalone one): count from here.
    pub(crate) fn restart(&mut self) {
        self.frames = 0;
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_when_idle_and_once_per_quarter_window() {
        let window = Window {
            frames: 8,
            bytes: 1 << 20,
        };
        let mut cadence = PromptCadence::default();
        assert!(cadence.next(true, 10, window), "nothing else in flight");
        let prompts: Vec<bool> = (0..8).map(|_| cadence.next(false, 10, window)).collect();
        assert_eq!(
            prompts,
            [false, true, false, true, false, true, false, true],
            "every second frame is a quarter of 8"
        );
        let bytes = Window {
            frames: 1 << 20,
            bytes: 400,
        };
        let mut cadence = PromptCadence::default();
        assert!(!cadence.next(false, 60, bytes));
        assert!(
            cadence.next(false, 60, bytes),
            "120 bytes passed a quarter of 400"
        );
        let tiny = Window {
            frames: 1,
            bytes: 1,
        };
        assert!(
            cadence.next(false, 0, tiny),
            "a window of one prompts every frame"
        );
    }
}
