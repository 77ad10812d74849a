//! What other threads ask of the pjlib thread: the commands [`crate::EngineHandle`] sends and
//! the loop (`runtime`) executes. Both sides depend on this module, never on each other.

use crate::error::Result;
use crate::event::CallId;
use crate::info::{CallStats, EngineInfo};

/// Where a command's result goes (a flume sender, so the caller can wait sync or async).
pub(crate) type Reply<T> = flume::Sender<Result<T>>;

pub(crate) enum Command {
    Answer {
        call: CallId,
        reply: Reply<()>,
    },
    Hangup {
        call: CallId,
        code: u16,
        reply: Reply<()>,
    },
    MakeCall {
        uri: String,
        reply: Reply<CallId>,
    },
    Transfer {
        call: CallId,
        target: String,
        reply: Reply<()>,
    },
    Stats {
        call: CallId,
        reply: Reply<CallStats>,
    },
    Info {
        reply: Reply<EngineInfo>,
    },
    Shutdown {
        reply: Reply<()>,
    },
}
