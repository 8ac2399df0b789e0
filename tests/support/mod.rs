//! Shared test harness: one CA and one default Dovecot per test process,
//! the plugin loaded the way a host loads it, and helpers to call commands.
#![allow(dead_code)]

pub mod dovecot;
pub mod pki;
pub mod postfix;
pub mod proxies;
pub mod scripted;

use dovecot::{Dovecot, Options};
use pki::{Ca, Leaf};
use plugin_abi::host::{
    default_plugin_path, profile_dir, CallOutcome, HostValue, List, Plugin, Tri,
};
use std::path::PathBuf;
use std::sync::OnceLock;

pub struct Env {
    pub ca: Ca,
    /// Certificate for localhost, 127.0.0.1 and ::1.
    pub good: Leaf,
    /// A folder holding the CA: what MAILEXT_CACERTS names in this process.
    pub cacerts: tempfile::TempDir,
    pub plugin: Plugin,
}

pub fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let ca = Ca::new("mailext test CA");
        let good = ca.leaf("localhost", &["localhost"], &["127.0.0.1", "::1"], -1, 30);
        let cacerts = tempfile::tempdir().unwrap();
        ca.write_pem(&cacerts.path().join("test-ca.pem"));
        // Before the plugin does any TLS; every test reaches the plugin through here.
        std::env::set_var("MAILEXT_CACERTS", cacerts.path());
        let plugin = Plugin::load(&plugin_path()).expect("load libmailext");
        Env {
            ca,
            good,
            cacerts,
            plugin,
        }
    })
}

pub fn plugin_path() -> PathBuf {
    std::env::var_os("MAILEXT_PLUGIN")
        .map(PathBuf::from)
        .unwrap_or_else(default_plugin_path)
}

/// The shared Dovecot with every mechanism on.
pub fn dovecot() -> &'static Dovecot {
    static D: OnceLock<Dovecot> = OnceLock::new();
    D.get_or_init(|| Dovecot::start(&env().good, &Options::default()))
}

pub fn s(v: &str) -> HostValue {
    HostValue::Character(v.to_string())
}
pub fn i(v: i64) -> HostValue {
    HostValue::Integer(v)
}
pub fn list() -> HostValue {
    HostValue::List(List::default())
}
pub const TRUE: HostValue = HostValue::Boolean(Tri::True);
pub const FALSE: HostValue = HostValue::Boolean(Tri::False);

/// The response list's lines from an argument vector.
pub fn lines(v: &HostValue) -> Vec<String> {
    match v {
        HostValue::List(l) => l
            .rows
            .iter()
            .map(|r| match &r[0] {
                HostValue::Character(s) => s.clone(),
                other => panic!("not text: {other:?}"),
            })
            .collect(),
        other => panic!("not a list: {other:?}"),
    }
}

pub fn status_text(o: &CallOutcome) -> String {
    o.status
        .iter()
        .map(|m| format!("{}: {}", m.proc_name, m.message))
        .collect::<Vec<_>>()
        .join("\n")
}

/// IMAPConnect with a status proc and a response list; returns the outcome and the list.
pub fn connect(
    server: &str,
    user: &str,
    pass: &str,
    secure: i64,
    verify: bool,
) -> (CallOutcome, HostValue) {
    let mut args = vec![
        s(server),
        s(user),
        s(pass),
        HostValue::Proc("onStatus".into()),
        list(),
        i(secure),
        if verify { TRUE } else { FALSE },
    ];
    let o = env().plugin.call("IMAPConnect", &mut args);
    (o, args.swap_remove(4))
}

pub fn disconnect(sock: i64) -> CallOutcome {
    env().plugin.call("IMAPDisconnect", &mut [i(sock)])
}

pub fn local(port: u16) -> String {
    format!("localhost:{port}")
}

/// Runs the mailext-host binary with `--json` and these script lines.
pub fn host_json(
    lines: &[&str],
    envs: &[(&str, &str)],
    plugin: Option<&std::path::Path>,
) -> Vec<serde_json::Value> {
    let exe = profile_dir().join("mailext-host");
    let mut cmd = std::process::Command::new(&exe);
    cmd.arg("--json");
    if let Some(p) = plugin {
        cmd.arg("--plugin").arg(p);
    }
    for l in lines {
        cmd.arg("-e").arg(l);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON {l}: {e}")))
        .collect()
}
