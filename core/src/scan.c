/*
 * scan.c — SCAN over a cluster: the cursor a client sees names a master and
 * that master's own cursor. It places a SCAN on its master (and rewrites the
 * command with the node's cursor) and turns the node's reply cursor back into
 * the client's. It sits just below router.c, which calls it and completes
 * the request with what it gives.
 *
 * The low SCAN_ORD_BITS bits are the master's place among the current masters
 * sorted by node id (address when the id is unknown), the next SCAN_TAG_BITS
 * a hash of its id, the rest the node's cursor. 0 starts at the first master;
 * when a node's cursor comes back 0 the next one names the next master, and 0
 * after the last master ends the scan. The tag makes a cursor from before a
 * change of masters (failover, a node added or removed) an error instead of
 * a scan of the wrong node. Redis's cursors index a hash table, so they stay
 * below its size: 46 bits are plenty.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

#define SCAN_ORD_BITS 10 /* SG_MAX_NODES */
#define SCAN_TAG_BITS 8
#define SCAN_NODE_SHIFT (SCAN_ORD_BITS + SCAN_TAG_BITS)

/* Redis's cursor syntax: decimal digits, within 64 bits. 1 when valid. */
int sg_scan_parse_cursor(const char *s, size_t len, uint64_t *out) {
    uint64_t v = 0;
    size_t i;
    if (len == 0 || len > 20) return 0;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10) return 0;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 1;
}

static const char *node_key(const sg_node *n) { return n->id[0] ? n->id : n->addr; }

static int by_node_key(const void *a, const void *b) {
    return strcmp(node_key(*(sg_node *const *)a), node_key(*(sg_node *const *)b));
}

static unsigned node_tag(const sg_node *n) {
    const unsigned char *p = (const unsigned char *)node_key(n);
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *p; p++) h = (h ^ *p) * 16777619u;
    return (unsigned)(h & ((1u << SCAN_TAG_BITS) - 1));
}

/* Replaces argument 1 of the request's RESP command with s. SG_OK or SG_ENOMEM. */
static int replace_arg1(sg_req *req, const char *s, size_t n) {
    char *p = req->cmd, *end = req->cmd + req->cmdlen, *arg1, *after, *buf, *q;
    size_t len0, len1;
    p = memchr(p, '\n', (size_t)(end - p)) + 1;     /* *N\r\n */
    len0 = (size_t)strtoul(p + 1, NULL, 10);        /* $len\r\n arg0 \r\n */
    p = memchr(p, '\n', (size_t)(end - p)) + 1 + len0 + 2;
    arg1 = p;
    len1 = (size_t)strtoul(p + 1, NULL, 10);
    after = memchr(p, '\n', (size_t)(end - p)) + 1 + len1 + 2;
    if ((buf = sg_malloc((size_t)(arg1 - req->cmd) + sg_resp_header_len(n) + n + 2 +
                         (size_t)(end - after))) == NULL)
        return SG_ENOMEM;
    memcpy(buf, req->cmd, (size_t)(arg1 - req->cmd));
    q = sg_resp_header(buf + (arg1 - req->cmd), '$', n);
    memcpy(q, s, n);
    q += n;
    *q++ = '\r';
    *q++ = '\n';
    memcpy(q, after, (size_t)(end - after));
    q += end - after;
    if (req->cmdcap == 0) sg_free(req->cmd); /* else it lives in req's block */
    req->cmdcap = 0;                         /* cmd is now an allocation of its own */
    req->cmd = buf;
    req->cmdlen = (size_t)(q - buf);
    return SG_OK;
}

int sg_scan_locate(sg_req *req, int *status, const char **msg) {
    sg_client *c = req->client;
    sg_node **m = NULL;
    uint64_t cur = req->scan->cursor;
    int n = sg_masters(c, &m), ord = (int)(cur & ((1u << SCAN_ORD_BITS) - 1));
    unsigned tag = (unsigned)(cur >> SCAN_ORD_BITS) & ((1u << SCAN_TAG_BITS) - 1);
    char digits[24];
    if (n < 0) {
        *status = SG_ENOMEM;
        *msg = "out of memory listing the masters";
        return 0;
    }
    if (n == 0) {
        sg_free(m);
        *status = SG_ECLUSTERDOWN;
        *msg = "no master is known to send the command to";
        return 0;
    }
    qsort(m, (size_t)n, sizeof *m, by_node_key);
    if (cur != 0 && (ord >= n || tag != node_tag(m[ord]))) {
        sg_free(m);
        /* malformed, or a master that is no longer one: as Redis says it */
        *status = SG_OK;
        *msg = "ERR invalid cursor";
        return 0;
    }
    req->target = m[ord];
    req->scan->ord = ord;
    req->scan->last = ord == n - 1;
    req->scan->tag = node_tag(m[ord]);
    req->scan->next_tag = ord + 1 < n ? node_tag(m[ord + 1]) : 0;
    req->scan_state = 2;
    sg_free(m);
    snprintf(digits, sizeof digits, "%llu", (unsigned long long)(cur >> SCAN_NODE_SHIFT));
    if (replace_arg1(req, digits, strlen(digits)) != SG_OK) {
        *status = SG_ENOMEM;
        *msg = "out of memory sending a command";
        return 0;
    }
    return 1;
}

/* The node's [cursor, keys] reply, its cursor turned into one that names the
 * node (or the next one). Anything else (an error reply) passes unchanged. */
sg_reply *sg_scan_reply(sg_req *req, sg_reply *r) {
    uint64_t node_cur, out;
    sg_reply *s;
    char digits[24];
    if (r->type != SG_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != SG_REPLY_STRING)
        return r;
    if (!sg_scan_parse_cursor(r->element[0]->str, r->element[0]->len, &node_cur) ||
        node_cur >> (64 - SCAN_NODE_SHIFT) != 0) {
        static const char err[] = "ERR slotgate: a node's SCAN cursor does not fit in a "
                                  "cluster cursor";
        sg_reply_free(r);
        return sg_reply_new_str(SG_REPLY_ERROR, err, sizeof err - 1);
    }
    if (node_cur != 0)
        out = node_cur << SCAN_NODE_SHIFT | (uint64_t)req->scan->tag << SCAN_ORD_BITS |
              (uint64_t)req->scan->ord;
    else if (!req->scan->last)
        out = (uint64_t)req->scan->next_tag << SCAN_ORD_BITS | (uint64_t)(req->scan->ord + 1);
    else
        out = 0; /* the last master is done */
    snprintf(digits, sizeof digits, "%llu", (unsigned long long)out);
    if ((s = sg_reply_new_str(SG_REPLY_STRING, digits, strlen(digits))) == NULL) {
        sg_reply_free(r);
        return NULL;
    }
    sg_reply_free(r->element[0]);
    r->element[0] = s;
    return r;
}
