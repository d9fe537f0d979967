/*
 * slotgate-call — one command through libslotgate, from the same settings
 * slotgated reads: `slotgate-call [-c FILE] [-u UPSTREAM] COMMAND ARGS...`.
 * It prints the reply as redis-cli would. Also the smallest example of
 * embedding the library's blocking API.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "slotgate.h"

static void print_reply(const sg_reply *r, int indent) {
    size_t i;
    switch (r->type) {
    case SG_REPLY_STRING: printf("\"%.*s\"\n", (int)r->len, r->str); break;
    case SG_REPLY_STATUS: printf("%s\n", r->str); break;
    case SG_REPLY_ERROR: printf("(error) %s\n", r->str); break;
    case SG_REPLY_INTEGER: printf("(integer) %lld\n", r->integer); break;
    case SG_REPLY_NIL: printf("(nil)\n"); break;
    case SG_REPLY_ARRAY:
        if (r->elements == 0) printf("(empty array)\n");
        for (i = 0; i < r->elements; i++) {
            printf("%*s%zu) ", i ? indent : 0, "", i + 1);
            print_reply(r->element[i], indent + 3);
        }
        break;
    }
}

int main(int argc, char **argv) {
    const char *path = NULL, *upstream = NULL;
    sg_config *cfg;
    sg_client *c;
    sg_reply *r;
    int opt, rc = 0;
    while ((opt = getopt(argc, argv, "+c:u:h")) != -1) {
        if (opt == 'c') path = optarg;
        else if (opt == 'u') upstream = optarg;
        else {
            fprintf(opt == 'h' ? stdout : stderr,
                    "usage: slotgate-call [-c FILE] [-u UPSTREAM] COMMAND [ARG...]\n"
                    "Settings come from FILE (a Tyk config) and TYK_* variables.\n");
            return opt == 'h' ? 0 : 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "slotgate-call: no command given\n");
        return 2;
    }
    if ((cfg = sg_config_new()) == NULL ||
        sg_config_load(cfg, path, SG_SHAPE_AUTO, NULL) != SG_OK) {
        fprintf(stderr, "slotgate-call: %s\n", sg_errmsg(cfg));
        sg_config_free(cfg);
        return 1;
    }
    c = sg_client_new(cfg, upstream, NULL);
    sg_config_free(cfg);
    if (c == NULL || sg_errcode(c) != SG_OK) {
        fprintf(stderr, "slotgate-call: %s\n", sg_errmsg(c));
        sg_client_free(c);
        return 1;
    }
    r = sg_client_call_argv(c, argc - optind, (const char *const *)argv + optind, NULL);
    if (r == NULL) {
        fprintf(stderr, "slotgate-call: %s (%s)\n", sg_errmsg(c), sg_errname(sg_errcode(c)));
        rc = 1;
    } else {
        print_reply(r, 0);
        rc = r->type == SG_REPLY_ERROR;
        sg_reply_free(r);
    }
    sg_client_free(c);
    return rc;
}
