/*
 * json.h — a small strict JSON reader (RFC 8259) that remembers where each
 * value and key starts, so settings errors can name FILE:LINE:COL. Numbers are
 * kept as their literal text; sg_json_int reads one as both settings readers
 * (the library's and slotgated's) must: as Go would.
 */
#ifndef SG_JSON_H
#define SG_JSON_H

#include <stddef.h>

typedef enum sg_json_type {
    SG_JSON_NULL,
    SG_JSON_BOOL,
    SG_JSON_NUMBER,
    SG_JSON_STRING,
    SG_JSON_ARRAY,
    SG_JSON_OBJECT
} sg_json_type;

typedef struct sg_json sg_json;

typedef struct sg_json_member {
    char *key; /* decoded, NUL-terminated (keys with NUL bytes are cut there) */
    int line, col; /* where the key starts */
    sg_json *value;
} sg_json_member;

struct sg_json {
    sg_json_type type;
    int line, col; /* 1-based; col counts characters, not bytes */
    int boolean;   /* BOOL */
    char *str;     /* STRING: decoded bytes; NUMBER: literal text */
    size_t len;    /* of str */
    size_t n;      /* ARRAY: items; OBJECT: members */
    sg_json **items;
    sg_json_member *members;
};

/* Parses len bytes. On failure returns NULL and writes "LINE:COL: expected
 * ..." into err (also on allocation failure: "out of memory", with *oom set
 * when oom is not NULL). The whole tree is freed by sg_json_free. */
sg_json *sg_json_parse(const char *text, size_t len, char *err, size_t errlen,
                       int *oom);
void sg_json_free(sg_json *v);

/* The value of an object's member as Go's encoding/json finds it: the last
 * member with exactly that key, else the last whose key matches in any
 * case. NULL when obj is not an object or has no such member. */
const sg_json *sg_json_get(const sg_json *obj, const char *key);

/* "null", "boolean", "number", "string", "array", "object". */
const char *sg_json_type_name(sg_json_type t);

/* A short rendering of v for "found ..." in the settings readers' messages
 * ("string \"x\"", "number 1.5", "true", "array"), into out. */
void sg_json_brief(const sg_json *v, char *out, size_t outlen);

/* A NUMBER read as Go's encoding/json reads it into an int: 0 with *out set
 * for an integer literal that fits in 64 bits; -1 for a fraction or an
 * exponent, -2 when it does not fit. */
int sg_json_int(const sg_json *v, long long *out);

#endif
