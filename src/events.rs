//! Events for a socket's event proc (SocketTools' CONNECT, DISCONNECT,
//! TIMEOUT, CANCEL, COMMAND, PROGRESS, UPDATE). They reach the host on the
//! thread of the command that is running; an event that happens while none
//! runs waits in the socket's queue for the next command.

use crate::error::MailError;
use plugin_abi::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Connect,
    Disconnect,
    Timeout,
    Cancel,
    Command,
    Progress,
    /// A mailbox update heard during IMAPIdle.
    Update,
}

impl EventKind {
    pub fn abi(self) -> u32 {
        match self {
            EventKind::Connect => MAILEXT_EVENT_CONNECT,
            EventKind::Disconnect => MAILEXT_EVENT_DISCONNECT,
            EventKind::Timeout => MAILEXT_EVENT_TIMEOUT,
            EventKind::Cancel => MAILEXT_EVENT_CANCEL,
            EventKind::Command => MAILEXT_EVENT_COMMAND,
            EventKind::Progress => MAILEXT_EVENT_PROGRESS,
            EventKind::Update => MAILEXT_EVENT_UPDATE,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            EventKind::Connect => "CONNECT",
            EventKind::Disconnect => "DISCONNECT",
            EventKind::Timeout => "TIMEOUT",
            EventKind::Cancel => "CANCEL",
            EventKind::Command => "COMMAND",
            EventKind::Progress => "PROGRESS",
            EventKind::Update => "UPDATE",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailEvent {
    pub kind: EventKind,
    pub code: i64,
    pub done: i64,
    pub total: i64,
    pub text: String,
}

impl MailEvent {
    pub fn new(kind: EventKind, code: i64, text: impl Into<String>) -> Self {
        MailEvent {
            kind,
            code,
            done: 0,
            total: 0,
            text: text.into(),
        }
    }

    pub fn progress(done: u64, total: u64) -> Self {
        MailEvent {
            kind: EventKind::Progress,
            code: 0,
            done: done as i64,
            total: total as i64,
            text: format!("{done} of {total} bytes"),
        }
    }

    /// An untagged update during IDLE: `text` is the update ("3 EXISTS"),
    /// `done` its number (the message count for EXISTS and RECENT, the
    /// message's sequence number for EXPUNGE and FETCH), `code` 0.
    pub fn update(number: u32, text: impl Into<String>) -> Self {
        MailEvent {
            kind: EventKind::Update,
            code: 0,
            done: number as i64,
            total: 0,
            text: text.into(),
        }
    }

    /// The event a failed command raises, if its failure is one.
    pub fn for_error(e: &MailError) -> Option<MailEvent> {
        let kind = match e {
            MailError::Timeout(_) => EventKind::Timeout,
            MailError::Cancelled(_) => EventKind::Cancel,
            MailError::Closed(_) | MailError::Bye(_) => EventKind::Disconnect,
            _ => return None,
        };
        Some(MailEvent::new(kind, e.code() as i64, e.to_string()))
    }

    /// The text form a host without the event callback receives.
    pub fn as_status(&self, socket: i64) -> String {
        let mut s = format!(
            "EVENT {} socket={socket} code={}",
            self.kind.name(),
            self.code
        );
        if self.kind == EventKind::Progress {
            s.push_str(&format!(" done={} total={}", self.done, self.total));
        }
        if !self.text.is_empty() {
            s.push(' ');
            s.push_str(&self.text);
        }
        s
    }
}
