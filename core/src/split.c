/*
 * split.c — multi-key commands split by slot (MGET, MSET, DEL, EXISTS ...) and
 * fan-out commands (every master, or every node), and the merge of their
 * parts' replies: as trees (sums, concatenations, MGET's elements back in key
 * order, a fan-out's response policy), or as bytes for a proxy (MGET's
 * elements, MSET's +OK) with no tree built. It sits just below router.c:
 * it makes, fills and merges a request's parts; the router dispatches them,
 * frees them and completes the request with what the merge gives.
 */
#include <assert.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

void sg_split_free(sg_split *sp) {
    int i;
    /* its arrays are in the same allocation */
    for (i = 0; i < sp->nparts; i++) sg_reply_free(sp->parts[i]);
    sg_buf_free(&sp->raw);
    sg_free(sp->raw_at);
    sg_free(sp);
}

int sg_split_new(sg_req *p, int nparts, int nkeys) {
    sg_split *sp;
    size_t size = sizeof *sp + (size_t)nparts * sizeof *sp->parts +
                  (size_t)(nparts + nkeys) * sizeof(int);
    if ((sp = sg_calloc(1, size)) == NULL) return SG_ENOMEM;
    sp->parts = (sg_reply **)(sp + 1);
    sp->part_nkeys = (int *)(sp->parts + nparts);
    sp->part_keys = sp->part_nkeys + nparts;
    sp->nparts = sp->remaining = nparts;
    p->sp = sp;
    return SG_OK;
}

/* ---- splitting ------------------------------------------------------------ */

int sg_split_by_slot(sg_req *p, int argc, const char *const *argv, const size_t *argvlen,
                     const int *keyidx, const int *keyslot, int nkeys, sg_part_fn make,
                     sg_req ***parts_out, int *nparts_out) {
    int pairs = p->split == SG_SPLIT_PAIRS, i, j, nparts = 0, rc = SG_OK;
    /* on the stack for the usual few keys */
    int small_slot[SMALL_ARGC], small_part[SMALL_ARGC];
    const char *small_argv[SMALL_ARGC + 1];
    size_t small_len[SMALL_ARGC + 1];
    int small = argc <= SMALL_ARGC; /* nkeys < argc */
    int *slot_of_part = small ? small_slot : sg_malloc((size_t)nkeys * sizeof(int));
    int *part_of_key = small ? small_part : sg_malloc((size_t)nkeys * sizeof(int));
    const char **pargv = small ? small_argv : sg_malloc((size_t)(argc + 1) * sizeof(char *));
    size_t *plen = small ? small_len : sg_malloc((size_t)(argc + 1) * sizeof(size_t));
    sg_req **parts = NULL;
    if (!slot_of_part || !part_of_key || !pargv || !plen) {
        rc = SG_ENOMEM;
        goto done;
    }
    for (i = 0; i < nkeys; i++) {
        for (j = 0; j < nparts && slot_of_part[j] != keyslot[i]; j++) {
        }
        if (j == nparts) slot_of_part[nparts++] = keyslot[i];
        part_of_key[i] = j;
    }
    parts = sg_calloc((size_t)nparts, sizeof *parts);
    if (sg_split_new(p, nparts, nkeys) != SG_OK || !parts) {
        rc = SG_ENOMEM;
        goto done;
    }
    if (SG_REQ_RAW_MERGE(p) && p->split == SG_SPLIT_ARRAY)
        /* NULL: the merge says so */
        p->sp->raw_at = sg_calloc((size_t)nkeys * 2, sizeof *p->sp->raw_at);
    {
        int k = 0;
        for (j = 0; j < nparts; j++) {
            int pargc = 0, first = k;
            pargv[pargc] = argv[0];
            plen[pargc++] = argvlen[0];
            for (i = 0; i < nkeys; i++) {
                if (part_of_key[i] != j) continue;
                p->sp->part_keys[k++] = i; /* reply position of this key */
                p->sp->part_nkeys[j]++;
                pargv[pargc] = argv[keyidx[i]];
                plen[pargc++] = argvlen[keyidx[i]];
                if (pairs && keyidx[i] + 1 < argc) {
                    pargv[pargc] = argv[keyidx[i] + 1];
                    plen[pargc++] = argvlen[keyidx[i] + 1];
                }
            }
            if ((parts[j] = make(p, j, pargc, pargv, plen)) == NULL) {
                rc = SG_ENOMEM;
                goto done;
            }
            parts[j]->slot = slot_of_part[j];
            parts[j]->part_first = first;
        }
    }
done:
    *parts_out = parts;
    *nparts_out = parts ? nparts : 0;
    if (!small) {
        sg_free(slot_of_part);
        sg_free(part_of_key);
        sg_free(pargv);
        sg_free(plen);
    }
    return rc;
}

int sg_split_fan_out(sg_req *p, int all_nodes, sg_req ***parts_out, int *nparts_out) {
    sg_client *c = p->client;
    sg_node **targets = NULL;
    sg_req **parts;
    int n = 0, i, rc = SG_OK;
    *parts_out = NULL;
    *nparts_out = 0;
    if (all_nodes && c->mode == SG_MODE_CLUSTER) {
        if ((targets = sg_malloc((size_t)(c->nnodes ? c->nnodes : 1) * sizeof *targets)) == NULL)
            return SG_ENOMEM;
        for (i = 0; i < c->nnodes; i++)
            if (c->nodes[i]->in_map && !c->nodes[i]->sentinel) targets[n++] = c->nodes[i];
    } else if ((n = sg_masters(c, &targets)) < 0) {
        return SG_ENOMEM;
    }
    if (n == 0) {
        sg_free(targets);
        return SG_OK;
    }
    parts = sg_calloc((size_t)n, sizeof *parts);
    if (sg_split_new(p, n, 0) != SG_OK || !parts) rc = SG_ENOMEM;
    for (i = 0; i < n && rc == SG_OK; i++) {
        if ((parts[i] = sg_calloc(1, sizeof *parts[i])) == NULL ||
            (parts[i]->cmd = sg_malloc(p->cmdlen)) == NULL) {
            rc = SG_ENOMEM;
            break;
        }
        memcpy(parts[i]->cmd, p->cmd, p->cmdlen);
        parts[i]->cmdlen = p->cmdlen;
        parts[i]->client = c;
        parts[i]->slot = -1;
        parts[i]->parent = p;
        parts[i]->part = i;
        parts[i]->info = p->info;
        parts[i]->readonly = p->readonly;
        parts[i]->exclusive = p->exclusive; /* SCRIPT KILL's parts too */
        parts[i]->block_ms = p->block_ms;
        parts[i]->target = targets[i];
    }
    *parts_out = parts;
    *nparts_out = parts ? n : 0;
    sg_free(targets);
    return rc;
}

/* ---- the parts' replies ---------------------------------------------------- */

/* A part's reply as bytes: kept in the parent until every part is in. An
 * MGET part's is an array of its keys' elements: each is cut out (its end
 * found as the reader finds a reply's) and placed at its key. */
static void add_raw_elements(sg_req *p, const sg_req *part, const char *resp, size_t len) {
    size_t pos = 1;
    long long n = 0;
    int idx = part->part, k;
    if (p->sp->raw_at == NULL) return; /* out of memory at the split: reported at the merge */
    if (len < 4 || resp[0] != '*') goto bad;
    while (pos < len && resp[pos] >= '0' && resp[pos] <= '9' && n <= INT_MAX)
        n = n * 10 + (resp[pos++] - '0');
    if (n != p->sp->part_nkeys[idx] || pos + 2 > len || resp[pos] != '\r') goto bad;
    pos += 2;
    for (k = 0; k < n; k++) {
        long long l = sg_reply_scan(resp + pos, len - pos);
        int key = p->sp->part_keys[part->part_first + k];
        if (l <= 0) goto bad;
        p->sp->raw_at[2 * key] = p->sp->raw.len;
        p->sp->raw_at[2 * key + 1] = (size_t)l;
        sg_buf_append(&p->sp->raw, resp + pos, (size_t)l);
        pos += (size_t)l;
    }
    if (pos == len) return;
bad:
    p->sp->raw_bad = 1;
}

int sg_split_take_raw(sg_req *part, const char *resp, size_t len) {
    sg_req *p = part->parent;
    assert(p->sp->remaining > 0 && "a part finished twice");
    if (p->split == SG_SPLIT_ARRAY) add_raw_elements(p, part, resp, len);
    else if (p->sp->raw_parts == 0) sg_buf_append(&p->sp->raw, resp, len); /* every part said +OK */
    p->sp->raw_parts++;
    return --p->sp->remaining == 0;
}

/* A fan-out Redis marks "special" (MEMORY STATS, LATENCY HISTOGRAM,
 * FUNCTION STATS ...): no rule merges its replies, so each comes labelled
 * with its node, [address, reply], and the parts are put end to end:
 * address, reply, address, reply ... The node's own shape stays intact. */
static sg_reply *label_part(sg_req *part, sg_reply *reply) {
    sg_reply *pair;
    const char *addr = part->target ? part->target->addr : "?";
    if ((pair = sg_reply_new_array(2)) == NULL) return NULL;
    if ((pair->element[0] = sg_reply_new_str(SG_REPLY_STRING, addr, strlen(addr))) == NULL) {
        sg_reply_free(pair);
        return NULL;
    }
    pair->element[1] = reply;
    return pair;
}

int sg_split_take(sg_req *part, sg_reply *reply, int status, const char *msg) {
    sg_req *p = part->parent;
    assert(p->sp->remaining > 0 && "a part finished twice");
    if (status == SG_OK && reply && reply->type != SG_REPLY_ERROR && p->fanout &&
        p->split == -1 - SG_RESP_SPECIAL) {
        sg_reply *pair = label_part(part, reply);
        if (pair == NULL) {
            sg_reply_free(reply);
            reply = NULL;
            status = SG_ENOMEM;
            msg = "out of memory merging the nodes' replies";
        }
        reply = pair;
    }
    if (status != SG_OK && p->failed_status == SG_OK) {
        p->failed_status = status;
        p->failed_msg = sg_strdup(msg ? msg : sg_strerror(status));
    }
    p->sp->parts[part->part] = reply;
    return --p->sp->remaining == 0;
}

/* ---- merging --------------------------------------------------------------- */

static sg_reply *merge_ints(sg_reply **parts, int n, int policy) {
    long long acc = 0;
    int i;
    for (i = 0; i < n; i++) {
        long long v = parts[i]->integer;
        if (i == 0) acc = v;
        else if (policy == SG_RESP_AGG_SUM || policy < 0) acc += v;
        else if (policy == SG_RESP_AGG_MIN) acc = v < acc ? v : acc;
        else if (policy == SG_RESP_AGG_MAX) acc = v > acc ? v : acc;
        else if (policy == SG_RESP_AGG_LOGICAL_AND) acc = acc && v;
        else if (policy == SG_RESP_AGG_LOGICAL_OR) acc = acc || v;
    }
    return sg_reply_new_int(acc);
}

/* Moves reply trees out of parts[] into a new array reply. */
static sg_reply *concat_arrays(sg_reply **parts, int n) {
    size_t total = 0, k = 0, j;
    sg_reply *out;
    int i;
    for (i = 0; i < n; i++) total += parts[i]->elements;
    if ((out = sg_reply_new_array(total)) == NULL) return NULL;
    for (i = 0; i < n; i++) {
        for (j = 0; j < parts[i]->elements; j++) {
            out->element[k++] = parts[i]->element[j];
            parts[i]->element[j] = NULL;
        }
    }
    return out;
}

/* Element-wise aggregation of equal-length integer arrays (SCRIPT EXISTS). */
static sg_reply *merge_int_arrays(sg_reply **parts, int n, int policy) {
    size_t len = parts[0]->elements, j;
    sg_reply *out, **col;
    int i;
    for (i = 1; i < n; i++)
        if (parts[i]->elements != len) return NULL;
    if ((out = sg_reply_new_array(len)) == NULL) return NULL;
    if ((col = sg_malloc((size_t)n * sizeof *col)) == NULL) {
        sg_reply_free(out);
        return NULL;
    }
    for (j = 0; j < len; j++) {
        for (i = 0; i < n; i++) {
            col[i] = parts[i]->element[j];
            if (col[i]->type != SG_REPLY_INTEGER) {
                sg_free(col);
                sg_reply_free(out);
                return NULL;
            }
        }
        if ((out->element[j] = merge_ints(col, n, policy)) == NULL) {
            sg_free(col);
            sg_reply_free(out);
            return NULL;
        }
    }
    sg_free(col);
    return out;
}

static sg_reply *take_part(sg_req *p, int i) {
    sg_reply *r = p->sp->parts[i];
    p->sp->parts[i] = NULL;
    return r;
}

/* A part whose reply is not nil, picked at random (RANDOMKEY: a master that
 * has keys), or 0 when every one is nil. */
static int any_not_nil(const sg_req *p) {
    int i, n = 0, pick = 0;
    for (i = 0; i < p->sp->nparts; i++)
        if (p->sp->parts[i]->type != SG_REPLY_NIL && random() % ++n == 0) pick = i;
    return pick;
}

/* The parts came as bytes (SG_REQ_RAW_MERGE): MGET's elements in key order
 * under one header, or MSET's +OK (moved out of the split state). */
static int raw_merge(sg_req *p, sg_buf *out, const char **msg) {
    int total = 0, i;
    if (p->sp->raw_bad) {
        *msg = "the nodes' replies could not be merged";
        return SG_EPROTO;
    }
    if (p->split == SG_SPLIT_ARRAY) {
        char head[32];
        for (i = 0; i < p->sp->nparts; i++) total += p->sp->part_nkeys[i];
        sg_buf_append(out, head, (size_t)snprintf(head, sizeof head, "*%d\r\n", total));
        for (i = 0; i < total && p->sp->raw_at; i++)
            sg_buf_append(out, p->sp->raw.data + p->sp->raw_at[2 * i], p->sp->raw_at[2 * i + 1]);
    } else {
        *out = p->sp->raw; /* no copy */
        memset(&p->sp->raw, 0, sizeof p->sp->raw);
    }
    if (out->oom || p->sp->raw.oom || (p->split == SG_SPLIT_ARRAY && p->sp->raw_at == NULL)) {
        sg_buf_free(out);
        *msg = "out of memory merging the nodes' replies";
        return SG_ENOMEM;
    }
    return SG_OK;
}

int sg_split_merge(sg_req *p, sg_reply **tree, sg_buf *bytes, const char **msg) {
    sg_reply *out = NULL;
    int i, all_int = 1, all_array = 1, bad_shape = 0; /* out NULL: bad shape, or no memory */
    assert(p->sp && p->sp->remaining == 0 && "merging before every part is in");
    *tree = NULL;
    if (p->failed_status != SG_OK) {
        *msg = p->failed_msg ? p->failed_msg : "a part failed";
        return p->failed_status;
    }
    /* one error reply among the parts is the reply, except where one success is enough */
    for (i = 0; i < p->sp->nparts; i++) {
        sg_reply *r = p->sp->parts[i];
        if (r == NULL) continue; /* it came as bytes */
        if (r->type == SG_REPLY_ERROR && p->split != -1 - SG_RESP_ONE_SUCCEEDED) {
            *tree = take_part(p, i);
            return SG_OK;
        }
        if (r->type != SG_REPLY_INTEGER) all_int = 0;
        if (r->type != SG_REPLY_ARRAY) all_array = 0;
        if (p->sp->raw_parts > 0) p->sp->raw_bad = 1; /* only errors come as trees then */
    }
    if (p->sp->raw_parts > 0) return raw_merge(p, bytes, msg);
    if (p->split == SG_SPLIT_ARRAY) {
        int total = 0, k;
        for (i = 0; i < p->sp->nparts; i++) total += p->sp->part_nkeys[i];
        if ((out = sg_reply_new_array((size_t)total)) != NULL) {
            int *pos = p->sp->part_keys;
            for (i = 0; i < p->sp->nparts; i++) {
                sg_reply *r = p->sp->parts[i];
                if (r->type != SG_REPLY_ARRAY || (int)r->elements != p->sp->part_nkeys[i]) {
                    sg_reply_free(out);
                    out = NULL;
                    bad_shape = 1;
                    break;
                }
                for (k = 0; k < p->sp->part_nkeys[i]; k++) {
                    out->element[pos[k]] = r->element[k];
                    r->element[k] = NULL;
                }
                pos += p->sp->part_nkeys[i];
            }
        }
    } else if (p->split == SG_SPLIT_PAIRS) {
        out = take_part(p, 0); /* every part said OK */
    } else if (p->split == SG_SPLIT_SUM) {
        if (all_int) out = merge_ints(p->sp->parts, p->sp->nparts, SG_RESP_AGG_SUM);
        else bad_shape = 1;
    } else {
        int policy = -1 - p->split;
        switch (policy) {
        case SG_RESP_ONE_SUCCEEDED:
            for (i = 0; i < p->sp->nparts && out == NULL; i++)
                if (p->sp->parts[i]->type != SG_REPLY_ERROR) out = take_part(p, i);
            if (out == NULL) out = take_part(p, 0);
            break;
        case SG_RESP_ALL_SUCCEEDED: out = take_part(p, 0); break;
        case SG_RESP_AGG_SUM:
        case SG_RESP_AGG_MIN:
        case SG_RESP_AGG_MAX:
        case SG_RESP_AGG_LOGICAL_AND:
        case SG_RESP_AGG_LOGICAL_OR:
            if (all_int) out = merge_ints(p->sp->parts, p->sp->nparts, policy);
            else if (all_array) out = merge_int_arrays(p->sp->parts, p->sp->nparts, policy);
            bad_shape = !all_int; /* merge_int_arrays also checks the shapes */
            break;
        default:
            if (all_array) out = concat_arrays(p->sp->parts, p->sp->nparts);
            else out = take_part(p, any_not_nil(p));
            break;
        }
    }
    if (out == NULL) {
        *msg = bad_shape ? "the nodes' replies could not be merged"
                         : "out of memory merging the nodes' replies";
        return bad_shape ? SG_EPROTO : SG_ENOMEM;
    }
    *tree = out;
    return SG_OK;
}
