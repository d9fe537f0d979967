/*
 * core_private.h — the one door from slotgated into libslotgate's internal
 * headers (core/src, on the daemon's include path through the slotgate_static
 * target, as the tests have it). The daemon links the static library and is
 * the core's own host, so it may use what a host program would not see; each
 * header says why it is needed. Every daemon file includes this, never a
 * core/src header directly.
 */
#ifndef SG_CORE_PRIVATE_H
#define SG_CORE_PRIVATE_H

/* sg_buf (replies are built in it), sg_malloc & co. (allocation failures a
 * test can force), sg_log, SG_ERRMSG_MAX, and the gateway calls made for the
 * daemon: sg_gateway_forward_cmd (a request whose command is resolved
 * already) and sg_gateway_denies (the policies on commands answered here). */
#include "sg_internal.h"

/* The Redis command table: resolution of a request's command, its index (the
 * dispatch table's key), arity, routes, and the version for INFO. */
#include "commands.h"
#include "commands_index.h" /* SG_CI_*: the dispatch table's entries by name */

/* The settings file: JSON (json.h) and the values in Go's syntax that the Go
 * gateway's settings used (config.h: sg_go_parse_int, sg_go_parse_bool). */
#include "config.h"
#include "json.h"

/* --check --connect makes its own blocking connections, with the engine's
 * pieces: the upstream's OpenSSL context (tls.h) and the RESP reader
 * (conn.h: sg_reply_scan, sg_reply_parse, sg_reply_error_is). */
#include "conn.h"
#include "tls.h"

#endif
