/*
 * main.c — slotgated's command line: reads the settings and, with --check,
 * prints the effective settings (secrets masked, each with its source) or the
 * error, and exits.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slotgate.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: slotgated [-c FILE] [--shape SHAPE] --check\n"
            "       slotgated --version | --help\n"
            "\n"
            "  -c, --config FILE  a Tyk settings file: tyk.conf, tyk_analytics.conf\n"
            "                     or pump.conf (without it: the environment alone)\n"
            "  --shape SHAPE      gateway, dashboard or pump (default: told from\n"
            "                     the file's keys, or from the TYK_* variables set)\n"
            "  --check            print the effective settings and where each came\n"
            "                     from, or the error; exit 0 when they are valid\n"
            "  -v, --version      print the version\n"
            "  -h, --help         this text\n"
            "\n"
            "Environment variables (TYK_GW_STORAGE_*, TYK_DB_*, TYK_PMP_*) override\n"
            "the file field by field, as in Tyk. See the README.\n");
}

static void log_stderr(int level, const char *msg, void *ud) {
    (void)ud;
    fprintf(stderr, "slotgated: %s: %s\n", sg_log_level_name(level), msg);
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"shape", required_argument, NULL, 's'},
        {"check", no_argument, NULL, 'k'},
        {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *path = NULL;
    int shape = SG_SHAPE_AUTO, check = 0, c, rc;
    sg_config *cfg;

    while ((c = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 's':
            if (strcmp(optarg, "gateway") == 0) shape = SG_SHAPE_GATEWAY;
            else if (strcmp(optarg, "dashboard") == 0) shape = SG_SHAPE_DASHBOARD;
            else if (strcmp(optarg, "pump") == 0) shape = SG_SHAPE_PUMP;
            else {
                fprintf(stderr,
                        "slotgated: --shape \"%s\": expected gateway, dashboard "
                        "or pump\n",
                        optarg);
                return 2;
            }
            break;
        case 'k': check = 1; break;
        case 'v': printf("slotgated %s\n", sg_version()); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "slotgated: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (!check) {
        fprintf(stderr,
                "slotgated: this build reads and checks settings only; serving "
                "clients is not built yet. Run with --check.\n");
        return 2;
    }

    /* Warnings are part of the dump: log only errors here. */
    sg_set_log(log_stderr, SG_LOG_ERROR, NULL);
    if ((cfg = sg_config_new()) == NULL) {
        fprintf(stderr, "slotgated: out of memory\n");
        return 1;
    }
    rc = sg_config_load(cfg, path, shape, NULL);
    if (rc != SG_OK) {
        fprintf(stderr, "slotgated: %s\n", sg_errmsg(cfg));
        sg_config_free(cfg);
        return 1;
    }
    {
        const char *dump = sg_config_dump(cfg);
        if (dump == NULL) {
            fprintf(stderr, "slotgated: %s\n", sg_errmsg(cfg));
            sg_config_free(cfg);
            return 1;
        }
        fputs(dump, stdout);
    }
    sg_config_free(cfg);
    return 0;
}
