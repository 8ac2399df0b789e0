/*
 * mailext.h: the C ABI between the mailext plugin and its hosts.
 *
 * Kept in sync with plugin-abi/src/lib.rs by a test that compiles this file
 * and compares every size, offset and constant with the Rust definitions.
 *
 * Rules: every struct starts with struct_size; fields are only ever appended;
 * arrays of structs are strided by the element's struct_size. Every pointer
 * passed across is borrowed for the duration of that call: the receiver copies
 * what it keeps, and neither side frees memory the other allocated.
 */
#ifndef MAILEXT_H
#define MAILEXT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MAILEXT_ABI_MAJOR 1
#define MAILEXT_ABI_MINOR 2
#define MAILEXT_ENTRY_SYMBOL "mailext_entry"

/* Value kinds; a parameter's `kinds` is a mask of these. */
#define MAILEXT_KIND_NONE 0       /* argument not given */
#define MAILEXT_KIND_INTEGER 1
#define MAILEXT_KIND_BOOLEAN 2    /* integer: MAILEXT_FALSE / TRUE / UNKNOWN */
#define MAILEXT_KIND_CHARACTER 4  /* UTF-8 in data/len */
#define MAILEXT_KIND_BINARY 8     /* bytes in data/len */
#define MAILEXT_KIND_LIST 16      /* host-owned list, opaque handle in list */
#define MAILEXT_KIND_PROC 32      /* a host method name (stsproc), UTF-8 in data/len */

#define MAILEXT_FALSE 0
#define MAILEXT_TRUE 1
#define MAILEXT_UNKNOWN 2

/* Event kinds (ABI 1.1), in MailextEvent.kind. */
#define MAILEXT_EVENT_CONNECT 1     /* connect finished; code 0 or the error */
#define MAILEXT_EVENT_DISCONNECT 2  /* the server closed the connection */
#define MAILEXT_EVENT_TIMEOUT 3     /* a wait for the server ran out of time */
#define MAILEXT_EVENT_CANCEL 4      /* IMAPCancel ended a blocking call */
#define MAILEXT_EVENT_COMMAND 5     /* a protocol command completed */
#define MAILEXT_EVENT_PROGRESS 6    /* done of total bytes moved */
#define MAILEXT_EVENT_UPDATE 7      /* IMAPIdle heard of a mailbox change; done is its number */

#define MAILEXT_PARAM_IN 1
#define MAILEXT_PARAM_OUT 2
#define MAILEXT_PARAM_OPTIONAL 4

#define MAILEXT_COMMAND_MULTITHREADED 1

#define MAILEXT_OK 0
#define MAILEXT_ERR_PARAM_TYPE (-501)
#define MAILEXT_ERR_PARAM_INFO (-502)
#define MAILEXT_ERR_PARAM_COUNT (-503)
#define MAILEXT_ERR_UNKNOWN_COMMAND (-506)
#define MAILEXT_ERR_BAD_LIST (-508)
#define MAILEXT_ERR_INTERNAL (-1190)
#define MAILEXT_ERR_ABI_VERSION (-1191)

typedef struct MailextValue {
  uint32_t struct_size;
  uint32_t kind;
  int64_t integer;
  const uint8_t *data;
  size_t len;
  void *list;
} MailextValue;

typedef struct MailextColumn {
  uint32_t struct_size;
  uint32_t kind;
  const char *name;
} MailextColumn;

typedef struct MailextParam {
  uint32_t struct_size;
  uint32_t kinds;
  uint32_t flags;
  uint32_t _reserved;
  const char *name;
  const char *default_text; /* NULL: no default */
  const char *description;
} MailextParam;

typedef struct MailextCommand {
  uint32_t struct_size;
  uint32_t flags;
  uint32_t return_kind;
  uint32_t param_count;
  const char *name;
  const MailextParam *params;
  const char *summary;
} MailextCommand;

/* Invoked only on the calling thread, only before `call` returns. */
/* ABI 1.1: an event for a socket's event proc, borrowed for the callback. */
typedef struct MailextEvent {
  uint32_t struct_size;
  uint32_t kind;        /* MAILEXT_EVENT_* */
  int64_t socket;
  int64_t code;         /* 0, or the error code that goes with the event */
  int64_t done;         /* PROGRESS: bytes so far; UPDATE: the update's number */
  int64_t total;        /* PROGRESS: bytes in all */
  const uint8_t *text;  /* UTF-8 detail, not NUL-terminated */
  size_t text_len;
} MailextEvent;

typedef struct MailextHostCallbacks {
  uint32_t struct_size;
  uint32_t _reserved;
  void *ctx;
  int32_t (*set_return)(void *ctx, const MailextValue *value);
  int32_t (*set_output)(void *ctx, uint32_t arg_index, const MailextValue *value);
  int32_t (*list_define)(void *ctx, void *list, const MailextColumn *columns, uint32_t count);
  int32_t (*list_append)(void *ctx, void *list, const MailextValue *cells, uint32_t count);
  void (*status)(void *ctx, const uint8_t *proc_name, size_t proc_len,
                 const uint8_t *message, size_t message_len);
  /* ABI 1.1, optional: a 1.0 host (or NULL here) gets events as status text. */
  void (*event)(void *ctx, const uint8_t *proc_name, size_t proc_len,
                const MailextEvent *event);
  /* ABI 1.2, optional: appends value's bytes to an out-argument that set_output
   * set earlier in this call (same kind); value->integer is the length it will
   * have in all (0 if unknown). NULL: large bodies come in one set_output. */
  int32_t (*append_output)(void *ctx, uint32_t arg_index, const MailextValue *value);
} MailextHostCallbacks;

typedef struct MailextHostInfo {
  uint32_t struct_size;
  uint32_t abi_major;
  uint32_t abi_minor;
  uint32_t _reserved;
  const char *host_name;
} MailextHostInfo;

/* MAILEXT_OK when set_return accepted the return value (command failures are
 * negative return values). Otherwise take the result as the return value: a
 * MAILEXT_ERR_* when the call could not run (NULL callbacks, unknown index),
 * the command's own negative code when set_return refused it, or
 * MAILEXT_ERR_BAD_LIST when set_return refused a successful result (a socket
 * it carried is closed again). */
typedef int32_t (*MailextCallFn)(uint32_t command_index, const MailextValue *args,
                                 uint32_t argc, const MailextHostCallbacks *host);

/* snprintf-style: writes at most cap-1 bytes plus NUL, returns the full length. */
typedef size_t (*MailextTextFn)(int32_t code, char *buf, size_t cap);

typedef struct MailextPlugin {
  uint32_t struct_size;
  uint32_t abi_major;
  uint32_t abi_minor;
  uint32_t command_count;
  const char *name;
  const char *version;
  const MailextCommand *commands;
  MailextCallFn call;
  MailextTextFn error_text;
  MailextTextFn last_error; /* the calling thread's last error; code ignored */
} MailextPlugin;

/* Returns NULL and sets *refusal (static, never freed) on an incompatible host. */
typedef const MailextPlugin *(*MailextEntryFn)(const MailextHostInfo *host, const char **refusal);

const MailextPlugin *mailext_entry(const MailextHostInfo *host, const char **refusal);

#ifdef __cplusplus
}
#endif

#endif /* MAILEXT_H */
