/*
 * reply.c — reply trees: the functions hiredis's reader calls to build
 * sg_reply objects (with sg_malloc, so allocation failures are testable), the
 * constructors the router uses to merge replies, and sg_reply_free.
 */
#include <stdint.h>
#include <string.h>

#include "engine.h"

sg_reply *sg_reply_new(int type) {
    sg_reply *r = sg_calloc(1, sizeof *r);
    if (r) r->type = type;
    return r;
}

/* A string reply and its bytes in one block: str points just past it. */
sg_reply *sg_reply_new_str(int type, const char *s, size_t len) {
    sg_reply *r;
    if (len > SIZE_MAX - sizeof *r - 1 || (r = sg_malloc(sizeof *r + len + 1)) == NULL) return NULL;
    memset(r, 0, sizeof *r);
    r->type = type;
    r->str = (char *)(r + 1);
    memcpy(r->str, s, len);
    r->str[len] = '\0';
    r->len = len;
    return r;
}

sg_reply *sg_reply_new_int(long long v) {
    sg_reply *r = sg_reply_new(SG_REPLY_INTEGER);
    if (r) r->integer = v;
    return r;
}

sg_reply *sg_reply_new_array(size_t n) {
    sg_reply *r = sg_reply_new(SG_REPLY_ARRAY);
    if (r == NULL) return NULL;
    if (n && (r->element = sg_calloc(n, sizeof *r->element)) == NULL) {
        sg_free(r);
        return NULL;
    }
    r->elements = n;
    return r;
}

void sg_reply_free(sg_reply *r) {
    size_t i;
    if (r == NULL) return;
    if (r->element) {
        for (i = 0; i < r->elements; i++) sg_reply_free(r->element[i]);
        sg_free(r->element);
    }
    if (r->str != (char *)(r + 1)) sg_free(r->str);
    sg_free(r);
}

int sg_reply_error_is(const sg_reply *r, const char *word) {
    size_t n = strlen(word);
    return r && r->type == SG_REPLY_ERROR && r->len >= n &&
           memcmp(r->str, word, n) == 0 && (r->len == n || r->str[n] == ' ');
}

/* ---- hiredis reader callbacks: link each new object into its parent -------
 * An array from the reader grows as its elements arrive: the count a node
 * announces is not allocated up front (a "*2000000000" and nothing more would
 * take 16 GB, and the protocol error that follows a loop over two billion
 * slots to free them). While it is read, elements counts the elements
 * attached so far, in a block of the next power of two (4 at least); once
 * complete it is the announced count. */

static void *attach(const redisReadTask *task, sg_reply *r) {
    sg_reply *parent;
    size_t i;
    if (r == NULL) return NULL;
    if (task->parent == NULL) return r;
    parent = task->parent->obj;
    i = (size_t)task->idx;
    if (i != parent->elements) { /* the reader fills arrays in order */
        sg_reply_free(r);
        return NULL;
    }
    if (i == 0 || (i >= 4 && (i & (i - 1)) == 0)) { /* the block is full */
        sg_reply **grown = sg_realloc(parent->element, (i ? i * 2 : 4) * sizeof *grown);
        if (grown == NULL) {
            sg_reply_free(r);
            return NULL;
        }
        parent->element = grown;
    }
    parent->element[i] = r;
    parent->elements = i + 1;
    return r;
}

static void *create_string(const redisReadTask *task, char *str, size_t len) {
    int type = task->type == REDIS_REPLY_ERROR    ? SG_REPLY_ERROR
               : task->type == REDIS_REPLY_STATUS ? SG_REPLY_STATUS
                                                  : SG_REPLY_STRING;
    return attach(task, sg_reply_new_str(type, str, len));
}

static void *create_array(const redisReadTask *task, int elements) {
    /* hiredis 0.14 gives an int; a negative count is a null array. The
     * elements come later (attach). */
    return attach(task, sg_reply_new(elements < 0 ? SG_REPLY_NIL : SG_REPLY_ARRAY));
}

static void *create_integer(const redisReadTask *task, long long value) {
    return attach(task, sg_reply_new_int(value));
}

static void *create_nil(const redisReadTask *task) {
    return attach(task, sg_reply_new(SG_REPLY_NIL));
}

static void free_object(void *obj) { sg_reply_free(obj); }

redisReplyObjectFunctions sg_reply_functions = {
    create_string, create_array, create_integer, create_nil, free_object};
