//! mailext called in-process through the C ABI, as a host calls it.

use plugin_abi::host::{default_plugin_path, HostValue, List, Plugin, Tri};
use std::path::PathBuf;

pub fn s(v: &str) -> HostValue {
    HostValue::Character(v.to_string())
}
pub fn i(v: i64) -> HostValue {
    HostValue::Integer(v)
}
fn list() -> HostValue {
    HostValue::List(List::default())
}

pub fn plugin_path() -> PathBuf {
    std::env::var_os("MAILEXT_PLUGIN")
        .map(PathBuf::from)
        .unwrap_or_else(default_plugin_path)
}

pub struct Mx {
    pub p: Plugin,
}

impl Mx {
    pub fn load() -> Mx {
        let path = plugin_path();
        let p =
            Plugin::load(&path).unwrap_or_else(|e| panic!("cannot load {}: {e}", path.display()));
        Mx { p }
    }

    /// IMAPConnect(server, user, pass, [stsproc], , secure, kTrue): the
    /// socket (or error code) and, with `status`, the status messages.
    pub fn connect(
        &self,
        server: &str,
        user: &str,
        pass: &str,
        secure: i64,
        status: bool,
    ) -> (i64, String) {
        let mut args = [
            s(server),
            s(user),
            s(pass),
            if status {
                HostValue::Proc("st".into())
            } else {
                HostValue::None
            },
            HostValue::None,
            i(secure),
            HostValue::Boolean(Tri::True),
        ];
        let o = self.p.call("IMAPConnect", &mut args);
        let text = o
            .status
            .iter()
            .map(|m| m.message.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        (o.code(), text)
    }

    pub fn disconnect(&self, sock: i64) -> i64 {
        self.p.call("IMAPDisconnect", &mut [i(sock)]).code()
    }

    pub fn noop(&self, sock: i64) -> i64 {
        self.p.call("IMAPNoOp", &mut [i(sock)]).code()
    }

    pub fn select(&self, sock: i64, mailbox: &str) -> i64 {
        self.p
            .call("IMAPSelectMailbox", &mut [i(sock), s(mailbox)])
            .code()
    }

    /// IMAPListMessages: (code, rows).
    pub fn list_messages(&self, sock: i64) -> (i64, usize) {
        let mut a = [i(sock), list()];
        let rc = self.p.call("IMAPListMessages", &mut a).code();
        let rows = match &a[1] {
            HostValue::List(l) => l.rows.len(),
            _ => 0,
        };
        (rc, rows)
    }

    /// IMAPRecvMessage: (code, bytes received). The message is dropped here.
    pub fn recv(&self, sock: i64, uid: i64) -> (i64, usize) {
        let mut a = [i(sock), i(uid), HostValue::Binary(Vec::new())];
        let rc = self.p.call("IMAPRecvMessage", &mut a).code();
        let n = match &a[2] {
            HostValue::Binary(b) => b.len(),
            HostValue::Character(c) => c.len(),
            _ => 0,
        };
        (rc, n)
    }

    pub fn set_config(&self, name: &str, value: &str) -> i64 {
        self.p
            .call("MailSetConfig", &mut [s(name), s(value)])
            .code()
    }

    pub fn last_error(&self) -> String {
        self.p.last_error()
    }
}
