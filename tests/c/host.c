/*
 * A minimal 4GL-style host written against the checked-in mailext.h only:
 * it proves a C host can load libmailext.so, shake hands, find commands and
 * run an IMAP session, with every callback copying what it is given.
 *
 * usage: host <libmailext.so> <server> <user> <password> <secure 0|1|2> <verify 0|1>
 *             [<mailbox> <uid>]
 * With a mailbox and UID it also selects the mailbox and receives that
 * message into a Binary value, taking large ones in pieces (ABI 1.2
 * append_output), and prints its length and FNV-1a hash.
 * Exit 0 only when every check passed, connect returned a socket and
 * disconnect returned 0 (and, with a UID, the message arrived).
 */
#define _POSIX_C_SOURCE 200809L

#include <dlfcn.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailext.h"

static int failures = 0;

static void check(int ok, const char *what) {
  if (!ok) {
    printf("FAIL: %s\n", what);
    failures++;
  }
}

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(3);
  }
  return p;
}

/* A host-owned list: rows of copied text, cells joined by tabs. */
typedef struct HostList {
  uint32_t columns;
  char **rows;
  size_t len, cap;
} HostList;

static void list_clear(HostList *l) {
  size_t i;
  for (i = 0; i < l->len; i++) free(l->rows[i]);
  free(l->rows);
  l->rows = NULL;
  l->len = l->cap = 0;
}

static void list_push(HostList *l, char *row) {
  if (l->len == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 8;
    char **rows = (char **)realloc(l->rows, cap * sizeof *rows);
    if (!rows) {
      fprintf(stderr, "out of memory\n");
      exit(3);
    }
    l->rows = rows;
    l->cap = cap;
  }
  l->rows[l->len++] = row;
}

/* What one call delivered; the lists are the ones passed in its arguments. */
typedef struct CallCtx {
  HostList *lists[4];
  size_t list_count;
  uint32_t argc;
  int has_return;
  uint32_t ret_kind;
  int64_t ret_integer;
  char *ret_text;
  /* The last Binary out-value, and how many append_output pieces it took. */
  unsigned char *bin;
  size_t bin_len, bin_cap;
  unsigned pieces;
} CallCtx;

/* Makes room for `more` bytes in the Binary out-value. */
static int bin_reserve(CallCtx *c, size_t more) {
  unsigned char *grown;
  if (more <= c->bin_cap - c->bin_len) return 1;
  grown = (unsigned char *)realloc(c->bin, c->bin_len + more);
  if (!grown) return 0;
  c->bin = grown;
  c->bin_cap = c->bin_len + more;
  return 1;
}

/* A copied, NUL-terminated rendering of a plugin value; NULL if unreadable. */
static char *copy_value_text(const MailextValue *v) {
  char *s;
  if (!v || v->struct_size < sizeof(MailextValue)) return NULL;
  switch (v->kind) {
    case MAILEXT_KIND_NONE:
      s = (char *)xmalloc(1);
      s[0] = '\0';
      return s;
    case MAILEXT_KIND_INTEGER:
    case MAILEXT_KIND_BOOLEAN:
      s = (char *)xmalloc(24);
      snprintf(s, 24, "%" PRId64, v->integer);
      return s;
    case MAILEXT_KIND_CHARACTER:
    case MAILEXT_KIND_BINARY:
      if (v->len > 0 && !v->data) return NULL;
      s = (char *)xmalloc(v->len + 1);
      if (v->len) memcpy(s, v->data, v->len);
      s[v->len] = '\0';
      return s;
    default:
      return NULL;
  }
}

static int known_list(const CallCtx *c, const void *list) {
  size_t i;
  for (i = 0; i < c->list_count; i++)
    if (c->lists[i] == list) return 1;
  return 0;
}

static int32_t cb_set_return(void *ctx, const MailextValue *value) {
  CallCtx *c = (CallCtx *)ctx;
  char *text = copy_value_text(value);
  if (!text) return MAILEXT_ERR_PARAM_INFO;
  free(c->ret_text);
  c->has_return = 1;
  c->ret_kind = value->kind;
  c->ret_integer = value->integer;
  c->ret_text = text;
  return MAILEXT_OK;
}

static int32_t cb_set_output(void *ctx, uint32_t arg_index, const MailextValue *value) {
  CallCtx *c = (CallCtx *)ctx;
  char *text;
  if (arg_index >= c->argc) return MAILEXT_ERR_PARAM_COUNT;
  if (value && value->struct_size >= sizeof(MailextValue) &&
      value->kind == MAILEXT_KIND_BINARY) {
    /* Kept, not printed: it may be a whole message. */
    if (value->len > 0 && !value->data) return MAILEXT_ERR_PARAM_INFO;
    c->bin_len = 0;
    if (!bin_reserve(c, value->len)) return MAILEXT_ERR_BAD_LIST;
    if (value->len) memcpy(c->bin, value->data, value->len);
    c->bin_len = value->len;
    printf("output %u: %zu bytes\n", (unsigned)arg_index, value->len);
    return MAILEXT_OK;
  }
  text = copy_value_text(value);
  if (!text) return MAILEXT_ERR_PARAM_INFO;
  printf("output %u: %s\n", (unsigned)arg_index, text);
  free(text);
  return MAILEXT_OK;
}

/* ABI 1.2: the next bytes of the Binary out-value that set_output started. */
static int32_t cb_append_output(void *ctx, uint32_t arg_index, const MailextValue *value) {
  CallCtx *c = (CallCtx *)ctx;
  if (arg_index >= c->argc || !value || value->struct_size < sizeof(MailextValue) ||
      value->kind != MAILEXT_KIND_BINARY || (value->len > 0 && !value->data))
    return MAILEXT_ERR_PARAM_INFO;
  /* The announced total is the server's word: reserve it only up to a cap. */
  if (c->bin_cap == 0 && value->integer > 0 && value->integer <= (int64_t)1 << 30 &&
      !bin_reserve(c, (size_t)value->integer))
    return MAILEXT_ERR_BAD_LIST;
  if (!bin_reserve(c, value->len)) return MAILEXT_ERR_BAD_LIST;
  memcpy(c->bin + c->bin_len, value->data, value->len);
  c->bin_len += value->len;
  c->pieces++;
  return MAILEXT_OK;
}

static int32_t cb_list_define(void *ctx, void *list, const MailextColumn *columns,
                              uint32_t count) {
  CallCtx *c = (CallCtx *)ctx;
  HostList *l = (HostList *)list;
  if (!known_list(c, list) || (count > 0 && !columns)) return MAILEXT_ERR_BAD_LIST;
  list_clear(l);
  l->columns = count;
  return MAILEXT_OK;
}

static int32_t cb_list_append(void *ctx, void *list, const MailextValue *cells,
                              uint32_t count) {
  CallCtx *c = (CallCtx *)ctx;
  HostList *l = (HostList *)list;
  const unsigned char *base = (const unsigned char *)cells;
  char *row;
  size_t row_len = 0;
  uint32_t i;
  if (!known_list(c, list) || count != l->columns || (count > 0 && !cells))
    return MAILEXT_ERR_BAD_LIST;
  row = (char *)xmalloc(1);
  row[0] = '\0';
  for (i = 0; i < count; i++) {
    /* Strided by the plugin's struct_size: a newer plugin's cells may be longer. */
    const MailextValue *cell =
        (const MailextValue *)(base + (size_t)i * cells->struct_size);
    char *text = copy_value_text(cell);
    size_t n;
    char *grown;
    if (!text) {
      free(row);
      return MAILEXT_ERR_BAD_LIST;
    }
    n = strlen(text);
    grown = (char *)realloc(row, row_len + n + 2);
    if (!grown) {
      fprintf(stderr, "out of memory\n");
      exit(3);
    }
    row = grown;
    if (i > 0) row[row_len++] = '\t';
    memcpy(row + row_len, text, n + 1);
    row_len += n;
    free(text);
  }
  list_push(l, row);
  return MAILEXT_OK;
}

static void cb_status(void *ctx, const uint8_t *proc_name, size_t proc_len,
                      const uint8_t *message, size_t message_len) {
  (void)ctx;
  printf("%.*s: %.*s\n", (int)proc_len, proc_name ? (const char *)proc_name : "",
         (int)message_len, message ? (const char *)message : "");
}

static MailextHostCallbacks callbacks(CallCtx *c) {
  MailextHostCallbacks cb;
  memset(&cb, 0, sizeof cb);
  cb.struct_size = (uint32_t)sizeof cb;
  cb.ctx = c;
  cb.set_return = cb_set_return;
  cb.set_output = cb_set_output;
  cb.list_define = cb_list_define;
  cb.list_append = cb_list_append;
  cb.status = cb_status;
  cb.append_output = cb_append_output;
  return cb;
}

static MailextValue value(uint32_t kind) {
  MailextValue v;
  memset(&v, 0, sizeof v);
  v.struct_size = (uint32_t)sizeof v;
  v.kind = kind;
  return v;
}

static MailextValue integer(int64_t n) {
  MailextValue v = value(MAILEXT_KIND_INTEGER);
  v.integer = n;
  return v;
}

static MailextValue boolean(int truth) {
  MailextValue v = value(MAILEXT_KIND_BOOLEAN);
  v.integer = truth ? MAILEXT_TRUE : MAILEXT_FALSE;
  return v;
}

static MailextValue text(uint32_t kind, const char *s) {
  MailextValue v = value(kind);
  v.data = (const uint8_t *)s;
  v.len = strlen(s);
  return v;
}

static MailextValue list_arg(HostList *l) {
  MailextValue v = value(MAILEXT_KIND_LIST);
  v.list = l;
  return v;
}

/* Calls command `index`; returns `call`'s result, the return value in *c. */
static int32_t run_command(const MailextPlugin *p, uint32_t index, const MailextValue *args,
                           uint32_t argc, CallCtx *c) {
  MailextHostCallbacks cb = callbacks(c);
  uint32_t i;
  free(c->ret_text);
  free(c->bin);
  memset(c, 0, sizeof *c);
  c->argc = argc;
  for (i = 0; i < argc; i++)
    if (args[i].kind == MAILEXT_KIND_LIST && c->list_count < 4)
      c->lists[c->list_count++] = (HostList *)args[i].list;
  return p->call(index, args, argc, &cb);
}

/* The return value as an integer, or INT64_MIN when the call delivered none. */
static int64_t returned(int32_t rc, const CallCtx *c) {
  if (rc != MAILEXT_OK) return rc;
  if (!c->has_return || c->ret_kind != MAILEXT_KIND_INTEGER) return INT64_MIN;
  return c->ret_integer;
}

static const MailextCommand *command_at(const MailextPlugin *p, uint32_t i) {
  /* Strided by struct_size so a newer plugin's longer entries still read. */
  const unsigned char *base = (const unsigned char *)p->commands;
  return (const MailextCommand *)(base + (size_t)i * p->commands->struct_size);
}

static uint32_t find_command(const MailextPlugin *p, const char *name) {
  uint32_t i;
  for (i = 0; i < p->command_count; i++)
    if (strcmp(command_at(p, i)->name, name) == 0) return i;
  printf("no command %s in the table\n", name);
  exit(2);
}

/* Reads one of the plugin's snprintf-style texts into a fresh buffer. */
static char *plugin_text(MailextTextFn f, int32_t code) {
  size_t n = f(code, NULL, 0);
  char *buf = (char *)xmalloc(n + 1);
  f(code, buf, n + 1);
  return buf;
}

static void print_rows(const char *label, const HostList *l) {
  size_t i;
  for (i = 0; i < l->len; i++) printf("%s response: %s\n", label, l->rows[i]);
}

static MailextHostInfo host_info(uint32_t major) {
  MailextHostInfo info;
  memset(&info, 0, sizeof info);
  info.struct_size = (uint32_t)sizeof info;
  info.abi_major = major;
  info.abi_minor = MAILEXT_ABI_MINOR;
  info.host_name = "mailext C host test";
  return info;
}

int main(int argc, char **argv) {
  void *lib, *sym;
  MailextEntryFn entry;
  MailextHostInfo info;
  const MailextPlugin *plugin;
  const char *refusal = NULL;
  uint32_t connect_ix, noop_ix, disconnect_ix;
  CallCtx c;
  HostList responses;
  MailextValue args[7];
  int32_t rc;
  int64_t sock, noop, disc;
  char *detail;
  int with_message;

  /* Line-buffered so a crash still leaves the output that led to it. */
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc != 7 && argc != 9) {
    fprintf(stderr, "usage: %s lib server user password secure verify [mailbox uid]\n",
            argv[0]);
    return 2;
  }
  with_message = argc == 9;
  memset(&c, 0, sizeof c);
  memset(&responses, 0, sizeof responses);

  lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    printf("dlopen: %s\n", dlerror());
    return 2;
  }
  sym = dlsym(lib, MAILEXT_ENTRY_SYMBOL);
  if (!sym) {
    printf("dlsym: %s\n", dlerror());
    return 2;
  }
  /* ISO C has no object-to-function pointer conversion; POSIX makes the bytes valid. */
  memcpy(&entry, &sym, sizeof entry);

  /* A host from another major version must be refused, with a reason. */
  info = host_info(99);
  plugin = entry(&info, &refusal);
  printf("handshake as ABI 99: %s; refusal: %s\n", plugin ? "accepted" : "refused",
         refusal ? refusal : "(NULL)");
  check(plugin == NULL, "a host with ABI major 99 was accepted");
  check(refusal != NULL && refusal[0] != '\0', "the refusal text is NULL or empty");

  refusal = NULL;
  info = host_info(MAILEXT_ABI_MAJOR);
  plugin = entry(&info, &refusal);
  if (!plugin) {
    printf("refused: %s\n", refusal ? refusal : "(no reason given)");
    return 1;
  }
  if (plugin->abi_major != MAILEXT_ABI_MAJOR ||
      plugin->struct_size < offsetof(MailextPlugin, last_error) + sizeof plugin->last_error ||
      !plugin->call || !plugin->error_text || !plugin->last_error ||
      plugin->command_count == 0 ||
      plugin->commands->struct_size < offsetof(MailextCommand, summary) + sizeof(const char *)) {
    printf("incompatible plugin: ABI %u.%u, struct_size %u\n", (unsigned)plugin->abi_major,
           (unsigned)plugin->abi_minor, (unsigned)plugin->struct_size);
    return 1;
  }
  printf("plugin: %s %s, ABI %u.%u, %u commands\n", plugin->name, plugin->version,
         (unsigned)plugin->abi_major, (unsigned)plugin->abi_minor,
         (unsigned)plugin->command_count);
  connect_ix = find_command(plugin, "IMAPConnect");
  noop_ix = find_command(plugin, "IMAPNoOp");
  disconnect_ix = find_command(plugin, "IMAPDisconnect");

  /* ABI-level errors: no callbacks at all, and a command past the table. */
  rc = plugin->call(connect_ix, NULL, 0, NULL);
  printf("call with NULL callbacks: %d\n", (int)rc);
  check(rc == MAILEXT_ERR_PARAM_INFO, "NULL callbacks did not give MAILEXT_ERR_PARAM_INFO");
  rc = run_command(plugin, plugin->command_count, NULL, 0, &c);
  printf("call of command %u: %d\n", (unsigned)plugin->command_count, (int)rc);
  check(rc == MAILEXT_ERR_UNKNOWN_COMMAND,
        "an out-of-range command did not give MAILEXT_ERR_UNKNOWN_COMMAND");

  /* A command failure is a return value: an Integer where the server goes. */
  args[0] = integer(143);
  args[1] = text(MAILEXT_KIND_CHARACTER, "nobody");
  args[2] = text(MAILEXT_KIND_CHARACTER, "nothing");
  rc = run_command(plugin, connect_ix, args, 3, &c);
  detail = plugin_text(plugin->last_error, 0);
  printf("IMAPConnect(143, ...): call %d, returned %" PRId64 ", last error: %s\n", (int)rc,
         returned(rc, &c), detail);
  free(detail);
  check(rc == MAILEXT_OK && returned(rc, &c) == MAILEXT_ERR_PARAM_TYPE,
        "an Integer server did not return -501");
  detail = plugin_text(plugin->error_text, MAILEXT_ERR_PARAM_TYPE);
  printf("error text %d: %s\n", MAILEXT_ERR_PARAM_TYPE, detail);
  free(detail);

  /* The session. */
  args[0] = text(MAILEXT_KIND_CHARACTER, argv[2]);
  args[1] = text(MAILEXT_KIND_CHARACTER, argv[3]);
  args[2] = text(MAILEXT_KIND_CHARACTER, argv[4]);
  args[3] = text(MAILEXT_KIND_PROC, "onStatus");
  args[4] = list_arg(&responses);
  args[5] = integer(strtol(argv[5], NULL, 10));
  args[6] = boolean(strcmp(argv[6], "0") != 0);
  rc = run_command(plugin, connect_ix, args, 7, &c);
  sock = returned(rc, &c);
  printf("socket: %" PRId64 "\n", sock);
  print_rows("connect", &responses);
  if (sock <= 0) {
    detail = plugin_text(plugin->last_error, 0);
    printf("connect failed: %s\n", detail);
    free(detail);
  }

  args[0] = integer(sock);
  args[1] = text(MAILEXT_KIND_PROC, "onStatus");
  args[2] = list_arg(&responses);
  rc = run_command(plugin, noop_ix, args, 3, &c);
  noop = returned(rc, &c);
  printf("noop: %" PRId64 "\n", noop);
  print_rows("noop", &responses);

  if (with_message) {
    uint64_t hash = 14695981039346656037u; /* FNV-1a 64 */
    int64_t selected, received;
    size_t i;
    args[0] = integer(sock);
    args[1] = text(MAILEXT_KIND_CHARACTER, argv[7]);
    rc = run_command(plugin, find_command(plugin, "IMAPSelectMailbox"), args, 2, &c);
    selected = returned(rc, &c);
    args[1] = integer(strtoll(argv[8], NULL, 10));
    args[2] = value(MAILEXT_KIND_BINARY);
    rc = run_command(plugin, find_command(plugin, "IMAPRecvMessage"), args, 3, &c);
    received = returned(rc, &c);
    for (i = 0; i < c.bin_len; i++) hash = (hash ^ c.bin[i]) * 1099511628211u;
    printf("message: %" PRId64 ", %zu bytes in %u pieces, fnv %016" PRIx64 "\n", received,
           c.bin_len, c.pieces, hash);
    check(selected == 0, "IMAPSelectMailbox did not return 0");
    check(received == 0, "IMAPRecvMessage did not return 0");
    args[1] = text(MAILEXT_KIND_PROC, "onStatus");
    args[2] = list_arg(&responses);
  }

  rc = run_command(plugin, disconnect_ix, args, 3, &c);
  disc = returned(rc, &c);
  printf("disconnect: %" PRId64 "\n", disc);
  print_rows("disconnect", &responses);

  check(sock > 0, "IMAPConnect did not return a socket");
  check(noop == 0, "IMAPNoOp did not return 0");
  check(disc == 0, "IMAPDisconnect did not return 0");

  free(c.ret_text);
  free(c.bin);
  list_clear(&responses);
  dlclose(lib);
  return failures == 0 ? 0 : 1;
}
