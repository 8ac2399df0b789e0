//! The command table in ABI form (static data the host reads) and the
//! handlers, in the same order.

use super::{connect, family, imap, misc, receive, smtp, Handler};
use plugin_abi::*;
use std::ffi::CStr;

const IN: u32 = MAILEXT_PARAM_IN;
const OPT: u32 = MAILEXT_PARAM_IN | MAILEXT_PARAM_OPTIONAL;
const CHAR: u32 = MAILEXT_KIND_CHARACTER;
const INT: u32 = MAILEXT_KIND_INTEGER;
const BOOL: u32 = MAILEXT_KIND_BOOLEAN;
const LIST: u32 = MAILEXT_KIND_LIST;
const PROC: u32 = MAILEXT_KIND_PROC | MAILEXT_KIND_CHARACTER;
const DATA: u32 = MAILEXT_KIND_CHARACTER | MAILEXT_KIND_BINARY;
/// Out-arguments: optional, so a caller may leave out ones it does not need.
const OUT: u32 = MAILEXT_PARAM_OUT | MAILEXT_PARAM_OPTIONAL;
const FLAG: u32 = MAILEXT_KIND_BOOLEAN;

const fn p(
    name: &'static CStr,
    kinds: u32,
    flags: u32,
    default: Option<&'static CStr>,
    desc: &'static CStr,
) -> MailextParam {
    MailextParam {
        struct_size: std::mem::size_of::<MailextParam>() as u32,
        kinds,
        flags,
        _reserved: 0,
        name: name.as_ptr(),
        default_text: match default {
            Some(d) => d.as_ptr(),
            None => std::ptr::null(),
        },
        description: desc.as_ptr(),
    }
}

const STSPROC: MailextParam = p(
    c"stsproc",
    PROC,
    OPT,
    None,
    c"method called with each status message",
);
const RESPONSES: MailextParam = p(
    c"responselist",
    LIST,
    OPT,
    None,
    c"cleared, then filled with the server's response lines",
);
const SOCKET: MailextParam = p(c"socket", INT, IN, None, c"socket returned by IMAPConnect");

static IMAP_CONNECT: [MailextParam; 10] = [
    p(
        c"server",
        CHAR,
        OPT,
        None,
        c"host name, IPv4 or [IPv6] address, optionally :port (default: setting hostname)",
    ),
    p(
        c"username",
        CHAR,
        OPT,
        None,
        c"user name to log in with (default: setting username)",
    ),
    p(
        c"password",
        CHAR,
        OPT,
        None,
        c"password, or the access token for XOAUTH2 / OAUTHBEARER; never shown (default: setting password)",
    ),
    STSPROC,
    RESPONSES,
    p(
        c"secure",
        INT | BOOL,
        OPT,
        Some(c"0"),
        c"0 plaintext, 1 TLS from the first byte, 2 STARTTLS",
    ),
    p(
        c"verify",
        BOOL | INT,
        OPT,
        Some(c"kTrue"),
        c"verify the server certificate and host name",
    ),
    p(
        c"timeout",
        INT,
        OPT,
        Some(c"0"),
        c"seconds to wait for the server; 0 = the configured timeout, else commstimeout",
    ),
    p(
        c"options",
        INT | CHAR,
        OPT,
        Some(c"\"\""),
        c"connect options: names such as \"IDENTIFY SECURE_IMPLICIT AUTH=PLAIN TUNNEL=socks5://host:1080\", or the SocketTools bit mask",
    ),
    p(
        c"eventproc",
        PROC,
        OPT,
        None,
        c"method called with CONNECT, DISCONNECT, TIMEOUT, CANCEL, COMMAND, PROGRESS and UPDATE events",
    ),
];
const SMTP_SOCKET: MailextParam = p(c"socket", INT, IN, None, c"socket returned by SMTPConnect");
static SMTP_CONNECT: [MailextParam; 11] = [
    p(
        c"server",
        CHAR,
        IN,
        None,
        c"host name or address, optionally :port (25; 587 turns EHLO on; 465 means TLS from the first byte)",
    ),
    p(
        c"localname",
        CHAR,
        OPT,
        None,
        c"the EHLO / HELO name (default: this machine's name)",
    ),
    p(
        c"username",
        CHAR,
        OPT,
        None,
        c"user name; empty = no authentication",
    ),
    p(
        c"password",
        CHAR,
        OPT,
        None,
        c"password, or the access token for XOAUTH2 / OAUTHBEARER; never shown",
    ),
    STSPROC,
    RESPONSES,
    p(
        c"secure",
        INT | BOOL,
        OPT,
        Some(c"0"),
        c"0 plaintext, 1 TLS from the first byte, 2 STARTTLS",
    ),
    p(
        c"verify",
        BOOL | INT,
        OPT,
        Some(c"kTrue"),
        c"verify the server certificate and host name",
    ),
    p(
        c"timeout",
        INT,
        OPT,
        Some(c"0"),
        c"seconds to wait for the server; 0 = the configured timeout, else commstimeout",
    ),
    p(
        c"options",
        INT | CHAR,
        OPT,
        Some(c"\"\""),
        c"connect options as for IMAPConnect, plus EXTENDED (EHLO)",
    ),
    p(
        c"eventproc",
        PROC,
        OPT,
        None,
        c"method called with CONNECT, DISCONNECT, TIMEOUT, CANCEL, COMMAND and PROGRESS events",
    ),
];
static SMTP_SEND_MESSAGE: [MailextParam; 8] = [
    SMTP_SOCKET,
    p(c"from", CHAR, IN, None, c"the envelope sender (MAIL FROM)"),
    p(
        c"recipients",
        CHAR,
        IN,
        None,
        c"envelope recipients, separated by commas or semicolons",
    ),
    p(
        c"message",
        DATA,
        IN,
        None,
        c"the whole RFC 5322 message, headers and body",
    ),
    p(
        c"options",
        CHAR,
        OPT,
        None,
        c"DSN requests: NOTIFY=SUCCESS,FAILURE RET=HDRS ENVID=id",
    ),
    p(
        c"resultlist",
        LIST,
        OPT,
        None,
        c"one row per recipient: address, code, text, accepted",
    ),
    STSPROC,
    RESPONSES,
];
static SMTP_SEND: [MailextParam; 15] = [
    p(
        c"server",
        CHAR,
        IN,
        None,
        c"host[:port] (25, or 465 when secure = 1), optionally followed by a space and the EHLO name",
    ),
    p(c"from", CHAR, IN, None, c"sender address, e.g. \"Alice <alice@example.com>\""),
    p(c"to", CHAR, IN, None, c"recipients, separated by commas or semicolons"),
    p(c"subject", CHAR, IN, None, c"subject (Unicode)"),
    p(c"body", CHAR, IN, None, c"message text (Unicode)"),
    p(c"cc", CHAR, OPT, None, c"copy recipients"),
    p(c"bcc", CHAR, OPT, None, c"blind copy recipients (never in the headers)"),
    p(c"name", CHAR, OPT, None, c"the sender's display name"),
    STSPROC,
    p(
        c"priority",
        INT,
        OPT,
        Some(c"3"),
        c"1 (highest) to 5 (lowest); 3 = normal",
    ),
    p(
        c"extraheaders",
        CHAR,
        OPT,
        None,
        c"further header lines \"Name: value\", one per line",
    ),
    p(c"user", CHAR, OPT, None, c"user name for SMTP AUTH; empty = none"),
    p(c"pass", CHAR, OPT, None, c"password; never shown"),
    p(
        c"secure",
        INT | BOOL,
        OPT,
        Some(c"0"),
        c"0 plaintext, 1 (kTrue) TLS from the first byte, 2 STARTTLS",
    ),
    p(
        c"verify",
        BOOL | INT,
        OPT,
        Some(c"kTrue"),
        c"verify the server certificate and host name",
    ),
];
static SMTP_SOCKET_STS_RESPONSES: [MailextParam; 3] = [SMTP_SOCKET, STSPROC, RESPONSES];
static WAIT: [MailextParam; 4] = [
    SOCKET,
    p(
        c"timeout",
        INT,
        OPT,
        Some(c"0"),
        c"seconds to wait; 0 = commstimeout. -1139 when the connect is still running",
    ),
    STSPROC,
    RESPONSES,
];
static CANCEL: [MailextParam; 2] = [SOCKET, STSPROC];
static ATTACH: [MailextParam; 2] = [SOCKET, STSPROC];
static SOCKET_STS_RESPONSES: [MailextParam; 3] = [SOCKET, STSPROC, RESPONSES];
static ERROR_TEXT: [MailextParam; 1] = [p(
    c"code",
    INT,
    IN,
    None,
    c"an error code returned by a command",
)];
static NO_PARAMS: [MailextParam; 0] = [];
static SET_CONFIG: [MailextParam; 2] = [
    p(
        c"name",
        CHAR,
        IN,
        None,
        c"commstimeout, hostname, remoteport, username, password, timeout, options, tunnel or resolve",
    ),
    p(
        c"value",
        INT | CHAR,
        IN,
        None,
        c"new value (Integer for commstimeout, remoteport, timeout; Character for the rest; options either)",
    ),
];
static GET_CONFIG: [MailextParam; 1] = [p(
    c"name",
    CHAR,
    IN,
    None,
    c"a setting name (password cannot be read back)",
)];

const MAILBOX: MailextParam = p(
    c"mailbox",
    CHAR,
    IN,
    None,
    c"mailbox name (Unicode; the plugin encodes it)",
);
const UID: MailextParam = p(c"uid", INT, IN, None, c"the message's UID");

static SELECT: [MailextParam; 9] = [
    SOCKET,
    MAILBOX,
    p(c"messages", INT, OUT, None, c"number of messages (EXISTS)"),
    p(c"recent", INT, OUT, None, c"number of recent messages"),
    p(
        c"uidnext",
        INT,
        OUT,
        None,
        c"the next UID the server will assign",
    ),
    p(c"uidvalidity", INT, OUT, None, c"the mailbox's UIDVALIDITY"),
    p(
        c"unseen",
        INT,
        OUT,
        None,
        c"sequence number of the first unseen message",
    ),
    STSPROC,
    RESPONSES,
];
static LIST_MESSAGES: [MailextParam; 4] = [
    SOCKET,
    p(
        c"list",
        LIST,
        IN,
        None,
        c"filled with UID, Size, InternalDate and the five flags",
    ),
    STSPROC,
    RESPONSES,
];
static RECV: [MailextParam; 5] = [
    SOCKET,
    UID,
    p(
        c"message",
        DATA,
        // Required: fetching a message nobody receives is a mistake.
        MAILEXT_PARAM_OUT,
        None,
        c"receives the exact bytes (Binary recommended)",
    ),
    STSPROC,
    RESPONSES,
];
static RECV_HEADERS: [MailextParam; 5] = [
    SOCKET,
    UID,
    p(
        c"headers",
        DATA,
        // Required, as for IMAPRecvMessage.
        MAILEXT_PARAM_OUT,
        None,
        c"receives the header's exact bytes, up to and including the empty line (Binary recommended)",
    ),
    STSPROC,
    RESPONSES,
];
static SET_FLAGS: [MailextParam; 9] = [
    SOCKET,
    UID,
    p(
        c"answered",
        FLAG,
        OPT,
        Some(c"kUnknown"),
        c"kTrue adds, kFalse removes, kUnknown leaves",
    ),
    p(
        c"deleted",
        FLAG,
        OPT,
        Some(c"kUnknown"),
        c"kTrue adds, kFalse removes, kUnknown leaves",
    ),
    p(
        c"draft",
        FLAG,
        OPT,
        Some(c"kUnknown"),
        c"kTrue adds, kFalse removes, kUnknown leaves",
    ),
    p(
        c"flagged",
        FLAG,
        OPT,
        Some(c"kUnknown"),
        c"kTrue adds, kFalse removes, kUnknown leaves",
    ),
    p(
        c"seen",
        FLAG,
        OPT,
        Some(c"kUnknown"),
        c"kTrue adds, kFalse removes, kUnknown leaves",
    ),
    STSPROC,
    RESPONSES,
];
static COPY: [MailextParam; 5] = [
    SOCKET,
    UID,
    p(c"destination", CHAR, IN, None, c"mailbox to copy into"),
    STSPROC,
    RESPONSES,
];
static LIST_MAILBOXES: [MailextParam; 6] = [
    SOCKET,
    p(
        c"refname",
        CHAR,
        OPT,
        Some(c"\"\""),
        c"reference name (usually empty)",
    ),
    p(
        c"pattern",
        CHAR,
        OPT,
        Some(c"\"\""),
        c"mailbox pattern with * and %; empty gives the delimiter",
    ),
    p(
        c"list",
        LIST,
        IN,
        None,
        c"filled with name, delimiter and attributes",
    ),
    STSPROC,
    RESPONSES,
];
static ONE_MAILBOX: [MailextParam; 4] = [SOCKET, MAILBOX, STSPROC, RESPONSES];
static RENAME: [MailextParam; 5] = [
    SOCKET,
    p(c"oldname", CHAR, IN, None, c"current mailbox name"),
    p(c"newname", CHAR, IN, None, c"new mailbox name"),
    STSPROC,
    RESPONSES,
];
static SEARCH: [MailextParam; 5] = [
    SOCKET,
    p(
        c"criteria",
        CHAR,
        IN,
        None,
        c"IMAP search criteria, e.g. UNSEEN FROM \"ann\"",
    ),
    p(c"list", LIST, IN, None, c"filled with the UIDs found"),
    STSPROC,
    RESPONSES,
];
static APPEND: [MailextParam; 7] = [
    SOCKET,
    MAILBOX,
    p(
        c"message",
        DATA,
        IN,
        None,
        c"the RFC 5322 message, exactly as it is to be stored",
    ),
    p(
        c"flags",
        CHAR,
        OPT,
        Some(c"\"\""),
        c"flags to set, e.g. \\Seen \\Flagged",
    ),
    p(
        c"date",
        CHAR,
        OPT,
        Some(c"\"\""),
        c"internal date, e.g. 17-Jul-1996 02:44:25 -0700",
    ),
    STSPROC,
    RESPONSES,
];
static IDLE: [MailextParam; 5] = [
    SOCKET,
    p(
        c"timeout",
        INT,
        OPT,
        Some(c"0"),
        c"seconds to wait for updates; 0 = the communications timeout",
    ),
    p(
        c"list",
        LIST,
        IN,
        None,
        c"filled with the updates that arrived",
    ),
    STSPROC,
    RESPONSES,
];

const fn c(
    name: &'static CStr,
    ret: u32,
    params: &'static [MailextParam],
    summary: &'static CStr,
) -> MailextCommand {
    MailextCommand {
        struct_size: std::mem::size_of::<MailextCommand>() as u32,
        flags: MAILEXT_COMMAND_MULTITHREADED,
        return_kind: ret,
        param_count: params.len() as u32,
        name: name.as_ptr(),
        params: params.as_ptr(),
        summary: summary.as_ptr(),
    }
}

pub const COMMAND_COUNT: usize = 34;

pub static COMMANDS: [MailextCommand; COMMAND_COUNT] = [
    c(
        c"IMAPConnect",
        INT,
        &IMAP_CONNECT,
        c"Connects and logs in to an IMAP server; returns a socket or a negative code",
    ),
    c(
        c"IMAPDisconnect",
        INT,
        &SOCKET_STS_RESPONSES,
        c"Logs out, closes the connection and frees the socket",
    ),
    c(
        c"IMAPNoOp",
        INT,
        &SOCKET_STS_RESPONSES,
        c"Sends NOOP so the server can report updates",
    ),
    c(
        c"MailErrorText",
        CHAR,
        &ERROR_TEXT,
        c"The text for an error code",
    ),
    c(
        c"MailLastError",
        CHAR,
        &NO_PARAMS,
        c"The detail of the calling thread's most recent failure",
    ),
    c(
        c"MailSetConfig",
        INT,
        &SET_CONFIG,
        c"Changes a process-wide setting",
    ),
    c(
        c"MailGetConfig",
        INT | CHAR,
        &GET_CONFIG,
        c"Reads a process-wide setting",
    ),
    c(
        c"IMAPSelectMailbox",
        INT,
        &SELECT,
        c"Selects a mailbox and reports its counts",
    ),
    c(
        c"IMAPListMessages",
        INT,
        &LIST_MESSAGES,
        c"Lists the selected mailbox's messages with UID, size, date and flags",
    ),
    c(
        c"IMAPRecvMessage",
        INT,
        &RECV,
        c"Receives a whole message by UID, exactly as stored",
    ),
    c(
        c"IMAPRecvHeaders",
        INT,
        &RECV_HEADERS,
        c"Receives a message's header by UID",
    ),
    c(
        c"IMAPSetMessageFlags",
        INT,
        &SET_FLAGS,
        c"Adds or removes the five system flags of a message",
    ),
    c(
        c"IMAPCopyMessage",
        INT,
        &COPY,
        c"Copies a message by UID into another mailbox",
    ),
    c(
        c"IMAPCheck",
        INT,
        &SOCKET_STS_RESPONSES,
        c"Asks the server to checkpoint the selected mailbox",
    ),
    c(
        c"IMAPExpungeMessages",
        INT,
        &SOCKET_STS_RESPONSES,
        c"Removes messages flagged Deleted",
    ),
    c(
        c"IMAPListMailboxes",
        INT,
        &LIST_MAILBOXES,
        c"Lists mailboxes matching a pattern",
    ),
    c(
        c"IMAPListSubscribedMailboxes",
        INT,
        &LIST_MAILBOXES,
        c"Lists subscribed mailboxes matching a pattern",
    ),
    c(
        c"IMAPCreateMailbox",
        INT,
        &ONE_MAILBOX,
        c"Creates a mailbox",
    ),
    c(
        c"IMAPDeleteMailbox",
        INT,
        &ONE_MAILBOX,
        c"Deletes a mailbox",
    ),
    c(c"IMAPRenameMailbox", INT, &RENAME, c"Renames a mailbox"),
    c(
        c"IMAPSubscribeMailbox",
        INT,
        &ONE_MAILBOX,
        c"Subscribes to a mailbox",
    ),
    c(
        c"IMAPUnsubscribeMailbox",
        INT,
        &ONE_MAILBOX,
        c"Unsubscribes from a mailbox",
    ),
    c(
        c"IMAPSearch",
        INT,
        &SEARCH,
        c"Searches the selected mailbox; fills a list with UIDs",
    ),
    c(
        c"IMAPAppendMessage",
        INT,
        &APPEND,
        c"Stores a message in a mailbox",
    ),
    c(
        c"IMAPIdle",
        INT,
        &IDLE,
        c"Waits for server updates (IDLE); select a mailbox first to hear about its messages",
    ),
    c(
        c"IMAPWait",
        INT,
        &WAIT,
        c"Waits for an asynchronous IMAPConnect (option ASYNC) to finish; returns 0 or its error",
    ),
    c(
        c"IMAPCancel",
        INT,
        &CANCEL,
        c"Ends the blocking call running on a socket (from another thread) with -516",
    ),
    c(
        c"IMAPAttachThread",
        INT,
        &ATTACH,
        c"Makes the calling thread the owner of a socket (option OWNTHREAD)",
    ),
    c(
        c"SMTPConnect",
        INT,
        &SMTP_CONNECT,
        c"Connects (and logs in) to an SMTP server; returns a socket or a negative code",
    ),
    c(
        c"SMTPSendMessage",
        INT,
        &SMTP_SEND_MESSAGE,
        c"Sends one message to its recipients; fills a list with each recipient's result",
    ),
    c(c"SMTPNoOp", INT, &SMTP_SOCKET_STS_RESPONSES, c"Sends NOOP"),
    c(
        c"SMTPReset",
        INT,
        &SMTP_SOCKET_STS_RESPONSES,
        c"Sends RSET (abandons a transaction)",
    ),
    c(
        c"SMTPDisconnect",
        INT,
        &SMTP_SOCKET_STS_RESPONSES,
        c"Sends QUIT and closes the socket",
    ),
    c(
        c"SMTPSend",
        INT,
        &SMTP_SEND,
        c"Builds a MIME message and sends it in one go (connect, send, quit)",
    ),
];

pub(super) static HANDLERS: [Handler; COMMAND_COUNT] = [
    connect::connect,
    imap::disconnect,
    imap::noop,
    misc::error_text,
    misc::last_error,
    misc::set_config,
    misc::get_config,
    family::select,
    family::list_messages,
    receive::recv_message,
    receive::recv_headers,
    family::set_flags,
    family::copy,
    family::check,
    family::expunge,
    family::list_mailboxes,
    family::list_subscribed,
    family::create,
    family::delete,
    family::rename,
    family::subscribe,
    family::unsubscribe,
    family::search,
    family::append,
    family::idle,
    connect::wait,
    connect::cancel,
    connect::attach_thread,
    smtp::connect,
    smtp::send_message,
    smtp::noop,
    smtp::reset,
    smtp::disconnect,
    smtp::send,
];
