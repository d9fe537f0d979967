/*
 * ut_config.c — the storage settings reader, table-driven: each case is a
 * file (or none), an environment, and what must come out: values with their
 * sources and warnings, or the error code and the words of its message.
 *
 * In the JSON of a case, ' stands for " (readability); ` stands for a real '.
 * Expectations (good cases), separated by ';':
 *   UP.FIELD=VALUE          sg_config_get(UP, FIELD) is VALUE (masked)
 *   UP.FIELD=VALUE@SRC      ... and its source contains SRC
 *   U:UP.FIELD=VALUE        the unmasked value
 *   !UP                     there is no upstream UP
 *   #N                      there are N upstreams
 *   W:TEXT                  some warning contains TEXT
 *   W0                      there are no warnings
 * Bad cases: the code, and every '|'-separated part of expect appears in
 * the message.
 */
#include <unistd.h>

#include "config.h"
#include "test.h"

typedef struct cfg_case {
    const char *name;
    int shape;
    const char *json; /* NULL: no file */
    const char *env;  /* "NAME=value" lines separated by '\n'; NULL: none */
    int rc;
    const char *expect;
} cfg_case;

#define GW SG_SHAPE_GATEWAY
#define AUTO SG_SHAPE_AUTO
#define DB SG_SHAPE_DASHBOARD
#define PMP SG_SHAPE_PUMP

/* The seed example of Tyk's docs, as an operator pastes it into tyk.conf. */
#define SEED                                                                   \
    "{\n"                                                                      \
    "'storage': {\n"                                                           \
    "    'type': 'redis',\n"                                                   \
    "    'enable_cluster': true,\n"                                            \
    "    'hosts' : {\n"                                                        \
    "        'server1': '6379',\n"                                             \
    "        'server2': '6380',\n"                                             \
    "        'server3: '6381',\n"                                              \
    "    },\n"                                                                 \
    "    'username': '',\n"                                                    \
    "    'password': '',\n"                                                    \
    "    'database': 0,\n"                                                     \
    "    'optimisation_max_idle': 100\n"                                       \
    "},\n"                                                                     \
    "}\n"

#define SEED_FIXED                                                             \
    "{\n"                                                                      \
    "'storage': {\n"                                                           \
    "    'type': 'redis',\n"                                                   \
    "    'enable_cluster': true,\n"                                            \
    "    'hosts' : {\n"                                                        \
    "        'server1': '6379',\n"                                             \
    "        'server2': '6380',\n"                                             \
    "        'server3': '6381'\n"                                              \
    "    },\n"                                                                 \
    "    'username': '',\n"                                                    \
    "    'password': '',\n"                                                    \
    "    'database': 0,\n"                                                     \
    "    'optimisation_max_idle': 100\n"                                       \
    "}\n"                                                                      \
    "}\n"

#define ST(body) "{'storage': {" body "}}"

static const char *TLS_FILE; /* a readable file, made in main() */

static const cfg_case cases[] = {
    /* ---- gateway: files ------------------------------------------------- */
    {"seed example fixed", AUTO, SEED_FIXED, NULL, SG_OK,
     "#1;default.mode=cluster@resolved;"
     "default.addresses=server1:6379,server2:6380,server3:6381@:5:"
     ";default.optimisation_max_idle=100@:13:;default.type=redis@:3:13"},
    {"host and port", GW, ST("'host': 'redis1', 'port': 6379"), NULL, SG_OK,
     "default.mode=single;default.addresses=redis1:6379@host file;W0"},
    {"port only: localhost", GW, ST("'port': 6390"), NULL, SG_OK,
     "default.addresses=localhost:6390"},
    {"addrs, cluster", GW, ST("'addrs': ['a:1', 'b:2', 'c:3'], 'enable_cluster': true"), NULL,
     SG_OK, "default.mode=cluster;default.addresses=a:1,b:2,c:3@:1:23;W0"},
    {"addrs win over hosts", GW,
     ST("'addrs': ['a:1'], 'hosts': {'h': '9'}, 'enable_cluster': true"), NULL, SG_OK,
     "default.addresses=a:1;W:storage.hosts ignored"},
    {"hosts win over host and port", GW,
     ST("'hosts': {'h1': '7001', 'h2': '7002'}, 'host': 'x', 'port': 1, "
        "'enable_cluster': true"),
     NULL, SG_OK, "default.addresses=h1:7001,h2:7002"},
    {"single node warns of extra addresses", GW, ST("'addrs': ['a:1', 'b:2', 'c:3']"), NULL, SG_OK,
     "default.mode=single;default.addresses=a:1;W:only the first address a:1, 2 more"},
    {"sentinel wins over cluster", GW,
     ST("'addrs': ['s1:26379', 's2:26379'], 'master_name': 'mymaster', "
        "'enable_cluster': true, 'sentinel_password': 'sp'"),
     NULL, SG_OK,
     "default.mode=sentinel;default.addresses=s1:26379,s2:26379;"
     "W:enable_cluster ignored;default.sentinel_password=********;"
     "U:default.sentinel_password=sp"},
    {"defaults", GW, "{'storage': {}}", NULL, SG_OK,
     "default.addresses=localhost:6379@default;default.timeout=5@default;"
     "default.optimisation_max_active=500@default;"
     "default.optimisation_max_idle=100@default;default.tls_min_version=1.2;"
     "default.tls_max_version=1.3;default.type=redis@default;W:no address set"},
    {"max_active 0 means 500", GW, ST("'optimisation_max_active': 0"), NULL, SG_OK,
     "default.optimisation_max_active=500@gave 0"},
    {"timeout -3 means 5", GW, ST("'timeout': -3"), NULL, SG_OK, "default.timeout=5@gave -3"},
    {"max_idle capped by max_active", GW,
     ST("'optimisation_max_active': 10, 'optimisation_max_idle': 50"), NULL, SG_OK,
     "default.optimisation_max_idle=50;W:at most 10 idle"},
    {"max_idle default under small max_active", GW, ST("'optimisation_max_active': 7"), NULL, SG_OK,
     "default.optimisation_max_idle=7@default"},
    {"case-insensitive keys, as Go", GW, "{'Storage': {'Enable_Cluster': true, 'ADDRS': ['a:1']}}",
     NULL, SG_OK, "default.mode=cluster;default.addresses=a:1"},
    {"exact key preferred over folded", GW,
     "{'storage': {'addrs': ['x:1']}, 'STORAGE': {'addrs': ['y:2']}}", NULL, SG_OK,
     "default.addresses=x:1"},
    {"duplicate key: last wins", GW, ST("'port': 1, 'port': 2"), NULL, SG_OK,
     "default.port=2@:1:33"},
    {"null leaves the default", GW, ST("'timeout': null, 'addrs': null"), NULL, SG_OK,
     "default.timeout=5@default;default.addresses=localhost:6379"},
    {"password masked", GW, ST("'password': 's3cret', 'username': 'u'"), NULL, SG_OK,
     "default.password=********;U:default.password=s3cret;default.username=u"},
    {"empty password shown empty", GW, ST("'password': ''"), NULL, SG_OK, "default.password="},
    {"cache store when switched on", GW,
     "{'storage': {'port': 1}, 'enable_separate_cache_store': true, "
     "'cache_storage': {'port': 2}}",
     NULL, SG_OK, "#2;cache.addresses=localhost:2;default.addresses=localhost:1;!analytics"},
    {"cache store ignored when off", GW, "{'storage': {'port': 1}, 'cache_storage': {'port': 2}}",
     NULL, SG_OK, "#1;!cache"},
    {"analytics store", GW,
     "{'storage': {}, 'enable_separate_analytics_store': true, "
     "'analytics_storage': {'addrs': ['an:1'], 'enable_cluster': true}}",
     NULL, SG_OK, "#2;analytics.mode=cluster;analytics.addresses=an:1;!cache"},
    {"TLS on", GW,
     ST("'use_ssl': true, 'tls_min_version': '1.3', 'tls_max_version': '1.3', "
        "'ssl_insecure_skip_verify': true"),
     NULL, SG_OK,
     "default.use_ssl=true;default.tls_min_version=1.3;default.tls_max_version=1.3;"
     "default.ssl_insecure_skip_verify=true"},
    {"TLS fields unread without use_ssl", GW,
     ST("'tls_min_version': 'bogus', 'ca_file': '/nonexistent/ca.pem'"), NULL, SG_OK,
     "default.use_ssl=false;W:storage.ca_file ignored: use_ssl is off"},
    {"cert without key", GW, ST("'use_ssl': true, 'cert_file': '%TLS'"), NULL, SG_OK,
     "W:no client certificate"},
    {"database in cluster mode ignored", GW,
     ST("'enable_cluster': true, 'addrs': ['a:1'], 'database': 3"), NULL, SG_OK,
     "default.database=3;W:database 3 ignored"},
    {"database single", GW, ST("'database': 3, 'port': 1"), NULL, SG_OK, "default.database=3;W0"},
    {"IPv6 address", GW, ST("'addrs': ['[::1]:6379']"), NULL, SG_OK,
     "default.addresses=[::1]:6379"},
    {"IPv6 hosts key", GW, ST("'hosts': {'::1': '6379'}"), NULL, SG_OK,
     "default.addresses=[::1]:6379"},
    {"IPv6 host", GW, ST("'host': '::1', 'port': 7000"), NULL, SG_OK,
     "default.addresses=[::1]:7000"},
    {"type empty means redis", GW, ST("'type': '', 'port': 1"), NULL, SG_OK, "default.type=redis"},
    {"unknown storage key warned", GW, ST("'prot': 1"), NULL, SG_OK, "W:unknown key \"prot\""},
    {"unicode escapes decoded", GW, ST("'username': 'caf\\u00e9\\ud83d\\ude00', 'port': 1"), NULL,
     SG_OK, "default.username=caf\xc3\xa9\xf0\x9f\x98\x80"},
    {"other top-level keys ignored", GW,
     "{'listen_port': 8080, 'secret': 'x', 'storage': {'port': 1}}", NULL, SG_OK,
     "default.addresses=localhost:1;W0"},
    /* ---- gateway: environment over the file ------------------------------ */
    {"MAXACTIVE=010 is octal 8", AUTO, SEED_FIXED, "TYK_GW_STORAGE_MAXACTIVE=010", SG_OK,
     "default.optimisation_max_active=8@env TYK_GW_STORAGE_MAXACTIVE"},
    {"hex", GW, ST(""), "TYK_GW_STORAGE_MAXACTIVE=0x1F", SG_OK,
     "default.optimisation_max_active=31"},
    {"hex upper", GW, ST(""), "TYK_GW_STORAGE_MAXACTIVE=0X1f", SG_OK,
     "default.optimisation_max_active=31"},
    {"0o octal", GW, ST(""), "TYK_GW_STORAGE_MAXACTIVE=0o17", SG_OK,
     "default.optimisation_max_active=15"},
    {"binary", GW, ST(""), "TYK_GW_STORAGE_MAXACTIVE=0b101", SG_OK,
     "default.optimisation_max_active=5"},
    {"underscores", GW, ST(""), "TYK_GW_STORAGE_MAXACTIVE=1_000", SG_OK,
     "default.optimisation_max_active=1000"},
    {"underscore after prefix", GW, ST(""), "TYK_GW_STORAGE_MAXACTIVE=0x_1F", SG_OK,
     "default.optimisation_max_active=31"},
    {"plus sign", GW, ST(""), "TYK_GW_STORAGE_TIMEOUT=+7", SG_OK,
     "default.timeout=7@env TYK_GW_STORAGE_TIMEOUT"},
    {"negative env means default", GW, ST(""), "TYK_GW_STORAGE_MAXACTIVE=-1", SG_OK,
     "default.optimisation_max_active=500@gave -1"},
    {"bool 1", GW, ST("'addrs': ['a:1']"), "TYK_GW_STORAGE_ENABLECLUSTER=1", SG_OK,
     "default.mode=cluster;default.enable_cluster=true@env"},
    {"bool T", GW, ST("'addrs': ['a:1']"), "TYK_GW_STORAGE_ENABLECLUSTER=T", SG_OK,
     "default.mode=cluster"},
    {"bool True", GW, ST("'addrs': ['a:1']"), "TYK_GW_STORAGE_ENABLECLUSTER=True", SG_OK,
     "default.mode=cluster"},
    {"bool FALSE over file", GW, ST("'addrs': ['a:1'], 'enable_cluster': true"),
     "TYK_GW_STORAGE_ENABLECLUSTER=FALSE", SG_OK, "default.mode=single"},
    {"env addrs replace file addrs", GW, ST("'addrs': ['a:1'], 'enable_cluster': true"),
     "TYK_GW_STORAGE_ADDRS=x:1,y:2", SG_OK, "default.addresses=x:1,y:2@env TYK_GW_STORAGE_ADDRS"},
    {"blank env addrs: empty, hosts used", GW, ST("'addrs': ['a:1'], 'hosts': {'h': '2'}"),
     "TYK_GW_STORAGE_ADDRS=", SG_OK,
     "default.addresses=h:2;default.addrs=@env TYK_GW_STORAGE_ADDRS"},
    {"whitespace env addrs: empty", GW, ST("'addrs': ['a:1'], 'port': 5"),
     "TYK_GW_STORAGE_ADDRS=  ", SG_OK, "default.addresses=localhost:5"},
    {"env hosts replace the file's map", GW,
     ST("'hosts': {'a': '1', 'b': '2'}, 'enable_cluster': true"), "TYK_GW_STORAGE_HOSTS=c:3", SG_OK,
     "default.addresses=c:3;default.hosts=c:3@env"},
    {"blank env hosts: host and port used", GW, ST("'hosts': {'a': '1'}, 'host': 'hh', 'port': 9"),
     "TYK_GW_STORAGE_HOSTS=", SG_OK, "default.addresses=hh:9"},
    {"empty env string counts", GW, ST("'password': 'filepass', 'port': 1"),
     "TYK_GW_STORAGE_PASSWORD=", SG_OK, "U:default.password=@env TYK_GW_STORAGE_PASSWORD"},
    {"env only, no file", GW, NULL,
     "TYK_GW_STORAGE_ADDRS=r1:7000,r2:7001\nTYK_GW_STORAGE_ENABLECLUSTER=true", SG_OK,
     "default.mode=cluster;default.addresses=r1:7000,r2:7001"},
    {"env only, nothing set", AUTO, NULL, NULL, SG_OK,
     "#1;default.addresses=localhost:6379@default;default.mode=single;W:no address set"},
    {"env switches on the cache store", GW, ST("'port': 1"),
     "TYK_GW_ENABLESEPERATECACHESTORE=true\nTYK_GW_CACHESTORAGE_HOST=c\n"
     "TYK_GW_CACHESTORAGE_PORT=6000",
     SG_OK, "#2;cache.addresses=c:6000@env TYK_GW_CACHESTORAGE_HOST"},
    {"env switches off the analytics store", GW,
     "{'enable_separate_analytics_store': true, 'analytics_storage': {'port': 3}}",
     "TYK_GW_ENABLESEPERATEANALYTICSSTORE=0", SG_OK, "#1;!analytics"},
    {"analytics env prefix", GW, "{'enable_separate_analytics_store': true}",
     "TYK_GW_ANALYTICSSTORAGE_ADDRS=an:9", SG_OK, "analytics.addresses=an:9"},
    {"env TLS", GW, ST("'port': 1"),
     "TYK_GW_STORAGE_USESSL=t\nTYK_GW_STORAGE_TLSMINVERSION=1.0\n"
     "TYK_GW_STORAGE_TLSMAXVERSION=1.1",
     SG_OK, "default.tls_min_version=1.0;default.tls_max_version=1.1;default.use_ssl=true"},
    {"env of another product ignored", GW, ST("'port': 1"),
     "TYK_DB_REDISPORT=99\nTYK_PMP_REDIS_PORT=98", SG_OK, "default.addresses=localhost:1"},
    {"explicit shape wins over detection", DB, "{'storage': {'port': 1}, 'redis_port': 2}", NULL,
     SG_OK, "default.addresses=localhost:2"},
    /* ---- dashboard ----------------------------------------------------- */
    {"dashboard host and port", AUTO, "{'redis_host': 'dbh', 'redis_port': 6379}", NULL, SG_OK,
     "default.addresses=dbh:6379;default.mode=single"},
    {"dashboard cluster", AUTO,
     "{'redis_addrs': ['a:1', 'b:2'], 'enable_cluster': true, "
     "'redis_max_active': 20, 'redis_password': 'p'}",
     NULL, SG_OK,
     "default.mode=cluster;default.optimisation_max_active=20;default.password=********"},
    {"dashboard env", AUTO, "{'redis_port': 1}",
     "TYK_DB_REDISMAXACTIVE=0x10\nTYK_DB_ENABLECLUSTER=true\nTYK_DB_REDISADDRS=z:1", SG_OK,
     "default.optimisation_max_active=16@env TYK_DB_REDISMAXACTIVE;"
     "default.mode=cluster;default.addresses=z:1"},
    {"dashboard hosts env name", AUTO, "{'redis_port': 1}",
     "TYK_DB_HOSTS=h1:1,h2:2\nTYK_DB_ENABLECLUSTER=1", SG_OK,
     "default.addresses=h1:1,h2:2@env TYK_DB_HOSTS"},
    {"dashboard from env alone", AUTO, NULL, "TYK_DB_REDISHOST=only\nTYK_DB_REDISPORT=7777", SG_OK,
     "default.addresses=only:7777"},
    {"dashboard TLS keys", AUTO,
     "{'redis_port': 1, 'redis_use_ssl': true, 'redis_tls_min_version': '1.3'}", NULL, SG_OK,
     "default.use_ssl=true;default.tls_min_version=1.3"},
    {"dashboard ignores gateway env", AUTO, "{'redis_port': 1}", "TYK_GW_STORAGE_PORT=2", SG_OK,
     "default.addresses=localhost:1"},
    /* ---- pump ------------------------------------------------------------ */
    {"pump host and port", AUTO, "{'analytics_storage_config': {'host': 'ph', 'port': 6379}}", NULL,
     SG_OK, "default.addresses=ph:6379;default.key_prefix=analytics-@default"},
    {"pump TLS keys", AUTO,
     "{'analytics_storage_config': {'port': 1, 'use_ssl': true, "
     "'ssl_ca_file': '%TLS', 'ssl_min_version': '1.3', 'ssl_max_version': '1.3'}}",
     NULL, SG_OK, "default.ca_file=%TLS;default.tls_min_version=1.3"},
    {"pump deprecated use_ssl OR-ed", AUTO,
     "{'analytics_storage_config': {'port': 1, 'redis_use_ssl': true, "
     "'redis_ssl_insecure_skip_verify': true}}",
     NULL, SG_OK,
     "default.use_ssl=true@analytics_storage_config.redis_use_ssl;"
     "default.use_ssl=true@file ;"
     "default.ssl_insecure_skip_verify=true@redis_ssl_insecure_skip_verify;W0"},
    {"pump deprecated use_ssl alone", AUTO,
     "{'analytics_storage_config': {'port': 1, 'redis_use_ssl': true, 'ssl_ca_file': '%TLS'}}",
     NULL, SG_OK,
     "default.use_ssl=true@deprecated;default.ssl_insecure_skip_verify=false@default;"
     "default.ca_file=%TLS;W0"},
    {"pump deprecated use_ssl from env", AUTO, "{'analytics_storage_config': {'port': 1}}",
     "TYK_PMP_ANALYTICSSTORAGECONFIG_REDISUSESSL=true", SG_OK,
     "default.use_ssl=true@env TYK_PMP_ANALYTICSSTORAGECONFIG_REDISUSESSL"},
    {"pump use_ssl itself wins the source", AUTO,
     "{'analytics_storage_config': {'port': 1, 'use_ssl': true, 'redis_use_ssl': true}}", NULL,
     SG_OK, "default.use_ssl=true@:1:"},
    {"pump deprecated false leaves use_ssl off", AUTO,
     "{'analytics_storage_config': {'port': 1, 'redis_use_ssl': false}}", NULL, SG_OK,
     "default.use_ssl=false@default"},
    {"pump key prefixes", AUTO,
     "{'analytics_storage_config': {'port': 1, 'redis_key_prefix': 'old-'}}", NULL, SG_OK,
     "default.key_prefix=old-"},
    {"pump key_prefix wins", AUTO,
     "{'analytics_storage_config': {'port': 1, 'redis_key_prefix': 'old-', "
     "'key_prefix': 'new-'}}",
     NULL, SG_OK, "default.key_prefix=new-"},
    {"pump env layers, last wins", AUTO, "{'analytics_storage_config': {'port': 1}}",
     "TYK_PMP_ANALYTICSSTORAGECONFIG_PORT=10\nTYK_PMP_REDIS_PORT=20\n"
     "TYK_PMP_TEMPORAL_STORAGE_PORT=30",
     SG_OK, "default.addresses=localhost:30@TYK_PMP_TEMPORAL_STORAGE_PORT"},
    {"pump env middle layer", AUTO, "{'analytics_storage_config': {'port': 1}}",
     "TYK_PMP_ANALYTICSSTORAGECONFIG_HOST=a\nTYK_PMP_REDIS_HOST=b", SG_OK, "default.addresses=b:1"},
    {"pump lenient hosts", AUTO, "{'analytics_storage_config': {'enable_cluster': true}}",
     "TYK_PMP_ANALYTICSSTORAGECONFIG_HOSTS=a:1,bad,b:2,x:y:z", SG_OK, "default.addresses=a:1,b:2"},
    {"pump from env alone", AUTO, NULL, "TYK_PMP_REDIS_ADDRS=p:1", SG_OK, "default.addresses=p:1"},

    /* ---- upstreams named in slotgate's own settings ------------------------ */
    {"named upstream from the file", GW,
     "{'storage': {'port': 1}, 'slotgate': {'upstreams': {'sessions': {'addrs': ['s:1'], "
     "'enable_cluster': true}}}}",
     NULL, SG_OK,
     "#2;sessions.addresses=s:1@file;sessions.mode=cluster;default.addresses=localhost:1"},
    {"named upstream from the env", GW, ST("'port': 1"),
     "SLOTGATE_UPSTREAMS=rates, rate-limits\nSLOTGATE_UPSTREAM_RATES_PORT=7\n"
     "SLOTGATE_UPSTREAM_RATE_LIMITS_HOST=rl\nSLOTGATE_UPSTREAM_RATE_LIMITS_PORT=8",
     SG_OK,
     "#3;rates.addresses=localhost:7@env SLOTGATE_UPSTREAM_RATES_PORT;rate-limits.addresses=rl:8"},
    {"env over a named upstream's file", GW,
     "{'slotgate': {'upstreams': {'sessions': {'port': 5, 'password': 'a'}}}}",
     "SLOTGATE_UPSTREAM_SESSIONS_PASSWORD=b\nSLOTGATE_UPSTREAMS=sessions", SG_OK,
     "#2;U:sessions.password=b@env "
     "SLOTGATE_UPSTREAM_SESSIONS_PASSWORD;sessions.addresses=localhost:5"},
    {"named upstream beside a dashboard file", AUTO,
     "{'redis_port': 1, 'slotgate': {'upstreams': {'extra': {'port': 2}}}}", NULL, SG_OK,
     "#2;extra.addresses=localhost:2;default.addresses=localhost:1"},
    {"named upstream reserved name", GW, "{'slotgate': {'upstreams': {'cache': {'port': 2}}}}",
     NULL, SG_ECONFIG, ":1:29: slotgate.upstreams: \"cache\" is the name of a Tyk storage block"},
    {"named upstream bad name", GW, "{'slotgate': {'upstreams': {'My Store': {'port': 2}}}}", NULL,
     SG_ECONFIG, "slotgate.upstreams: \"My Store\" is not a name"},
    {"named upstreams not an object", GW, "{'slotgate': {'upstreams': ['a']}}", NULL, SG_ECONFIG,
     "slotgate.upstreams: expected an object"},
    {"named upstream not an object", GW, "{'slotgate': {'upstreams': {'a': 'redis:6379'}}}", NULL,
     SG_ECONFIG, "slotgate.upstreams.a: expected an object of storage settings, found string"},
    {"named upstream bad port", GW, "{'slotgate': {'upstreams': {'a': {'port': 99999}}}}", NULL,
     SG_ECONFIG, "slotgate.upstreams.a.port: 99999 is not a port"},
    {"named upstream env bad list", GW, ST(""), "SLOTGATE_UPSTREAMS=a,,b", SG_EENV,
     "SLOTGATE_UPSTREAMS=\"a,,b\": expected upstream names"},
    {"named upstream env bad value", GW, ST(""),
     "SLOTGATE_UPSTREAMS=x\nSLOTGATE_UPSTREAM_X_ENABLECLUSTER=maybe", SG_EENV,
     "SLOTGATE_UPSTREAM_X_ENABLECLUSTER=\"maybe\""},

    /* ---- bad JSON --------------------------------------------------------- */
    {"seed example", AUTO, SEED, NULL, SG_EJSON,
     ":8:20: expected ':' after the key \"server3: \"|closing quote missing"},
    {"trailing comma in object", GW, "{'storage': {'port': 1,}}", NULL, SG_EJSON,
     ":1:24: expected a key in double quotes|no comma after the last member"},
    {"trailing comma in array", GW, "{'storage': {'addrs': ['a:1',]}}", NULL, SG_EJSON,
     ":1:30: expected a value after ','|no comma after the last item"},
    {"comment", GW, "{\n  // the storage\n  'storage': {}\n}", NULL, SG_EJSON,
     ":2:3: expected a key in double quotes"},
    {"comment as value", GW, "{'storage': /* x */ {}}", NULL, SG_EJSON,
     ":1:13: expected a value for the key \"storage\"|no comments"},
    {"single quotes", GW, "{`storage`: {}}", NULL, SG_EJSON,
     ":1:2: expected a key in double quotes"},
    {"single-quoted value", GW, "{'storage': {'host': `x`}}", NULL, SG_EJSON,
     ":1:22: expected a value for the key \"host\"|double quotes"},
    {"empty file", GW, "", NULL, SG_EJSON, ":1:1: expected a JSON value, found end of file"},
    {"only whitespace", GW, "\n\n   ", NULL, SG_EJSON, ":3:4: expected a JSON value"},
    {"top-level array", GW, "[1, 2]", NULL, SG_EJSON,
     ":1:1: expected a JSON object ({ ... }) at the top level, found array"},
    {"fragment pasted alone", GW, "'storage': {}", NULL, SG_EJSON,
     ":1:10: expected the end of the file|wrap it in { }"},
    {"unterminated string", GW, "{'storage': {'host': 'abc}}", NULL, SG_EJSON,
     ":1:22: expected a closing '\"'"},
    {"string across lines", GW, "{'storage': {'host': 'ab\ncd'}}", NULL, SG_EJSON,
     ":1:25: expected a closing '\"' before the end of the line"},
    {"tab in string", GW, "{'storage': {'host': 'a\tb'}}", NULL, SG_EJSON,
     "control characters must be escaped"},
    {"leading zero", GW, "{'storage': {'port': 06379}}", NULL, SG_EJSON,
     ":1:23: expected '.', 'e' or the end of the number|no leading zeros"},
    {"bad escape", GW, "{'storage': {'host': 'a\\xb'}}", NULL, SG_EJSON, ":1:25: expected one of"},
    {"bad unicode escape", GW, "{'storage': {'host': '\\u12G4'}}", NULL, SG_EJSON,
     "expected 4 hex digits after \\u"},
    {"missing comma", GW, "{'storage': {'port': 1\n 'host': 'h'}}", NULL, SG_EJSON,
     ":2:2: expected ',' or '}' after an object member|is a comma missing?"},
    {"missing brace", GW, "{'storage': {'port': 1}", NULL, SG_EJSON,
     ":1:24: expected ',' or '}' after an object member, found end of file"},
    {"bare word", GW, "{'storage': {'host': redis}}", NULL, SG_EJSON,
     ":1:22: expected a value for the key \"host\", found 'r'"},
    {"byte-order mark", GW, "\xEF\xBB\xBF{}", NULL, SG_EJSON, "byte-order mark"},
    {"nesting too deep", GW,
     "{'a':[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
     "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
     NULL, SG_EJSON, "nested more than 64 levels deep"},
    {"lone minus", GW, "{'storage': {'port': -}}", NULL, SG_EJSON, ":1:23: expected a digit"},
    {"columns count characters", GW, "{'storage': {'username': '\xc3\xa9\xc3\xa9', x}}", NULL,
     SG_EJSON, ":1:32: expected a key in double quotes"},
    /* ---- bad values in the file ----------------------------------------- */
    {"port as a string", GW, ST("'port': '6379'"), NULL, SG_ECONFIG,
     ":1:22: storage.port: expected an integer, found string \"6379\""},
    {"port with a fraction", GW, ST("'port': 6379.0"), NULL, SG_ECONFIG,
     "storage.port: expected an integer (no fraction or exponent), found number 6379.0"},
    {"port too big for 64 bits", GW, ST("'port': 99999999999999999999"), NULL, SG_ECONFIG,
     "storage.port: expected an integer that fits in 64 bits"},
    {"enable_cluster as a string", GW, ST("'enable_cluster': 'true'"), NULL, SG_ECONFIG,
     "storage.enable_cluster: expected true or false, found string \"true\""},
    {"addrs as a string", GW, ST("'addrs': 'a:1,b:2'"), NULL, SG_ECONFIG,
     "storage.addrs: expected an array of \"host:port\" strings, found string"},
    {"addrs item a number", GW, ST("'addrs': ['a:1', 6379]"), NULL, SG_ECONFIG,
     ":1:31: storage.addrs: expected a \"host:port\" string, found number 6379"},
    {"hosts port a number", GW, ST("'hosts': {'h': 6379}"), NULL, SG_ECONFIG,
     "storage.hosts: expected a port as a string (\"6379\"), found number 6379"},
    {"hosts as an array", GW, ST("'hosts': ['h:1']"), NULL, SG_ECONFIG,
     "storage.hosts: expected an object of \"host\": \"port\" strings, found array"},
    {"port out of range", GW, ST("'port': 70000"), NULL, SG_ECONFIG,
     ":1:22: storage.port: 70000 is not a port (expected 1 to 65535)"},
    {"negative port", GW, ST("'port': -1"), NULL, SG_ECONFIG, "storage.port: -1 is not a port"},
    {"addr without port", GW, ST("'addrs': ['a:1', 'server3']"), NULL, SG_ECONFIG,
     ":1:31: storage.addrs: item 2: \"server3\" has no port"},
    {"addr port 0", GW, ST("'addrs': ['a:0']"), NULL, SG_ECONFIG,
     "item 1: \"a:0\": the port must be a number from 1 to 65535"},
    {"addr port too big", GW, ST("'addrs': ['a:99999']"), NULL, SG_ECONFIG,
     "\"a:99999\": the port must be a number from 1 to 65535"},
    {"addr port not a number", GW, ST("'addrs': ['a:http']"), NULL, SG_ECONFIG,
     "\"a:http\": the port must be a number"},
    {"IPv6 without brackets", GW, ST("'addrs': ['::1:6379']"), NULL, SG_ECONFIG,
     "an IPv6 host goes in brackets"},
    {"hosts port not a number", GW, ST("'hosts': {'h1': 'abc'}"), NULL, SG_ECONFIG,
     ":1:24: storage.hosts: entry \"h1\": \"h1:abc\": the port must be"},
    {"type not redis", GW, ST("'type': 'mongo'"), NULL, SG_ECONFIG,
     ":1:22: storage.type: \"mongo\" is not supported (expected \"redis\")"},
    {"TLS version invalid", GW, ST("'use_ssl': true, 'tls_min_version': '1.4'"), NULL, SG_ECONFIG,
     "storage.tls_min_version: \"1.4\" is not a TLS version"},
    {"TLS max invalid", GW, ST("'use_ssl': true, 'tls_max_version': 'TLS1.3'"), NULL, SG_ECONFIG,
     "storage.tls_max_version: \"TLS1.3\" is not a TLS version"},
    {"TLS min above max", GW,
     ST("'use_ssl': true, 'tls_min_version': '1.3', 'tls_max_version': '1.2'"), NULL, SG_ECONFIG,
     "minimum TLS version 1.3 is above the maximum 1.2"},
    {"CA file unreadable", GW, ST("'use_ssl': true, 'ca_file': '/nonexistent/ca.pem'"), NULL,
     SG_ECONFIG, "storage.ca_file: cannot read \"/nonexistent/ca.pem\": No such file"},
    {"key file unreadable", GW,
     ST("'use_ssl': true, 'cert_file': '%TLS', 'key_file': '/nonexistent/k'"), NULL, SG_ECONFIG,
     "storage.key_file: cannot read"},
    {"negative database", GW, ST("'database': -1"), NULL, SG_ECONFIG,
     "storage.database: -1 is not a database number"},
    {"timeout over a day", GW, ST("'timeout': 100000"), NULL, SG_ECONFIG,
     "storage.timeout: 100000 seconds is more than a day"},
    {"storage not an object", GW, "{'storage': 'redis://x'}", NULL, SG_ECONFIG,
     ":1:13: storage: expected an object, found string"},
    {"switch as a string", GW, "{'enable_separate_cache_store': 'yes'}", NULL, SG_ECONFIG,
     "enable_separate_cache_store: expected true or false, found string \"yes\""},
    {"bad value in the cache store", GW,
     "{'enable_separate_cache_store': true, 'cache_storage': {'port': 0.5}}", NULL, SG_ECONFIG,
     "cache_storage.port: expected an integer"},
    {"shape unknown", AUTO, "{'listen_port': 8080}", NULL, SG_ECONFIG,
     "cannot tell which Tyk file this is"},
    {"dashboard port as string", AUTO, "{'redis_port': '6379'}", NULL, SG_ECONFIG,
     "redis_port: expected an integer, found string"},
    {"pump TLS version invalid", AUTO,
     "{'analytics_storage_config': {'use_ssl': true, 'ssl_min_version': '2'}}", NULL, SG_ECONFIG,
     "analytics_storage_config.ssl_min_version: \"2\" is not a TLS version"},
    /* ---- bad environment ----------------------------------------------------- */
    {"ENABLECLUSTER=yes", GW, ST(""), "TYK_GW_STORAGE_ENABLECLUSTER=yes", SG_EENV,
     "TYK_GW_STORAGE_ENABLECLUSTER=\"yes\": expected a boolean"},
    {"empty bool", GW, ST(""), "TYK_GW_STORAGE_USESSL=", SG_EENV,
     "TYK_GW_STORAGE_USESSL=\"\": expected a boolean"},
    {"bool on", GW, ST(""), "TYK_GW_STORAGE_USESSL=on", SG_EENV, "TYK_GW_STORAGE_USESSL=\"on\""},
    {"bool tRUE", GW, ST(""), "TYK_GW_STORAGE_USESSL=tRUE", SG_EENV,
     "TYK_GW_STORAGE_USESSL=\"tRUE\""},
    {"empty int", GW, ST(""), "TYK_GW_STORAGE_MAXACTIVE=", SG_EENV,
     "TYK_GW_STORAGE_MAXACTIVE=\"\": expected an integer"},
    {"int word", GW, ST(""), "TYK_GW_STORAGE_PORT=abc", SG_EENV,
     "TYK_GW_STORAGE_PORT=\"abc\": expected an integer"},
    {"bad octal", GW, ST(""), "TYK_GW_STORAGE_MAXACTIVE=08", SG_EENV,
     "TYK_GW_STORAGE_MAXACTIVE=\"08\""},
    {"double underscore", GW, ST(""), "TYK_GW_STORAGE_MAXACTIVE=1__0", SG_EENV,
     "\"1__0\": expected an integer"},
    {"leading underscore", GW, ST(""), "TYK_GW_STORAGE_MAXACTIVE=_10", SG_EENV, "\"_10\""},
    {"trailing underscore", GW, ST(""), "TYK_GW_STORAGE_MAXACTIVE=10_", SG_EENV, "\"10_\""},
    {"prefix alone", GW, ST(""), "TYK_GW_STORAGE_MAXACTIVE=0x", SG_EENV, "\"0x\""},
    {"int with spaces", GW, ST(""), "TYK_GW_STORAGE_TIMEOUT= 5", SG_EENV,
     "TYK_GW_STORAGE_TIMEOUT=\" 5\""},
    {"int with fraction", AUTO, "{'redis_port': 1}", "TYK_DB_REDISMAXACTIVE=1.5", SG_EENV,
     "TYK_DB_REDISMAXACTIVE=\"1.5\": expected an integer"},
    {"int out of range", GW, ST(""), "TYK_GW_STORAGE_MAXACTIVE=99999999999999999999", SG_EENV,
     "expected an integer that fits in 64 bits"},
    {"negative out of range", GW, ST(""), "TYK_GW_STORAGE_DATABASE=-9223372036854775809", SG_EENV,
     "fits in 64 bits"},
    {"strict hosts: item without colon", GW, ST(""), "TYK_GW_STORAGE_HOSTS=h1:1,h2", SG_EENV,
     "TYK_GW_STORAGE_HOSTS=\"h1:1,h2\": item \"h2\" is not host:port"},
    {"strict hosts: two colons", GW, ST(""), "TYK_GW_STORAGE_HOSTS=a:b:c", SG_EENV,
     "item \"a:b:c\" is not host:port"},
    {"env addr without port", GW, ST(""), "TYK_GW_STORAGE_ADDRS=h1", SG_ECONFIG,
     "TYK_GW_STORAGE_ADDRS=\"h1\": storage.addrs: item 1: \"h1\" has no port"},
    {"env port out of range", GW, ST(""), "TYK_GW_STORAGE_PORT=70000", SG_ECONFIG,
     "TYK_GW_STORAGE_PORT=\"70000\": storage.port: 70000 is not a port"},
    {"env type not redis", GW, ST(""), "TYK_GW_STORAGE_TYPE=memcached", SG_ECONFIG,
     "TYK_GW_STORAGE_TYPE=\"memcached\": storage.type"},
    {"env switch bad", GW, ST(""), "TYK_GW_ENABLESEPERATECACHESTORE=maybe", SG_EENV,
     "TYK_GW_ENABLESEPERATECACHESTORE=\"maybe\""},
    {"env TLS version bad", GW, ST("'use_ssl': true"), "TYK_GW_STORAGE_TLSMAXVERSION=1.9",
     SG_ECONFIG, "TYK_GW_STORAGE_TLSMAXVERSION=\"1.9\": storage.tls_max_version"},
    {"dashboard env bad bool", AUTO, "{'redis_port': 1}", "TYK_DB_ENABLECLUSTER=yes", SG_EENV,
     "TYK_DB_ENABLECLUSTER=\"yes\""},
    {"pump env bad int", AUTO, "{'analytics_storage_config': {}}", "TYK_PMP_REDIS_TIMEOUT=5s",
     SG_EENV, "TYK_PMP_REDIS_TIMEOUT=\"5s\""},
    {"cache env bad", GW, "{'enable_separate_cache_store': true}", "TYK_GW_CACHESTORAGE_PORT=x",
     SG_EENV, "TYK_GW_CACHESTORAGE_PORT=\"x\""},
};

/* ---- running a case ---------------------------------------------------------- */

static char tmpdir[256];

/* ' → ", ` → ', %TLS → the readable file. Returns a malloc'd string. */
static char *render(const char *s) {
    size_t n = strlen(s), cap = n * 2 + strlen(TLS_FILE) + 1, o = 0;
    char *out = malloc(cap);
    while (*s) {
        if (strncmp(s, "%TLS", 4) == 0) {
            o += (size_t)snprintf(out + o, cap - o, "%s", TLS_FILE);
            s += 4;
            continue;
        }
        out[o++] = *s == '\'' ? '"' : *s == '`' ? '\'' : *s;
        s++;
    }
    out[o] = '\0';
    return out;
}

/* The case's environment; *storage holds its text (free it). */
static const char **make_env(const char *spec, char **storage) {
    *storage = spec ? strdup(spec) : NULL;
    return test_env_lines(*storage);
}

static int has_warning(sg_config *cfg, const char *text) {
    int i;
    for (i = 0; i < sg_config_warning_count(cfg); i++)
        if (strstr(sg_config_warning(cfg, i), text)) return 1;
    return 0;
}

static void check_expectation(const cfg_case *c, sg_config *cfg, char *tok) {
    char *rendered;
    if (tok[0] == '#') {
        CHECK_INT(sg_config_upstream_count(cfg), atoi(tok + 1));
    } else if (tok[0] == '!') {
        CHECK(sg_config_get(cfg, tok + 1, "mode", 0, NULL, NULL) == SG_EINVAL);
    } else if (strcmp(tok, "W0") == 0) {
        if (sg_config_warning_count(cfg) != 0)
            TEST_FAIL_("%s: expected no warning, got \"%s\"", c->name,
                       sg_config_warning(cfg, 0));
        test_checks++;
    } else if (strncmp(tok, "W:", 2) == 0) {
        test_checks++;
        if (!has_warning(cfg, tok + 2))
            TEST_FAIL_("%s: no warning contains \"%s\" (%d warnings%s%s)", c->name,
                       tok + 2, sg_config_warning_count(cfg),
                       sg_config_warning_count(cfg) ? ", first: " : "",
                       sg_config_warning_count(cfg) ? sg_config_warning(cfg, 0) : "");
    } else {
        int unmasked = strncmp(tok, "U:", 2) == 0;
        char *spec = tok + (unmasked ? 2 : 0);
        char *dot = strchr(spec, '.'), *eq = strchr(spec, '=');
        char *at = eq ? strchr(eq, '@') : NULL;
        const char *value = NULL, *source = NULL;
        int rc;
        if (!dot || !eq) {
            TEST_FAIL_("%s: bad expectation \"%s\"", c->name, tok);
            return;
        }
        *dot = *eq = '\0';
        if (at) *at = '\0';
        rc = sg_config_get(cfg, spec, dot + 1, unmasked, &value, &source);
        test_checks++;
        if (rc != SG_OK) {
            TEST_FAIL_("%s: get %s.%s failed: %s", c->name, spec, dot + 1, sg_errmsg(cfg));
            return;
        }
        rendered = render(eq + 1);
        test_checks++;
        if (strcmp(value, rendered) != 0)
            TEST_FAIL_("%s: %s.%s is \"%s\", expected \"%s\"", c->name, spec,
                       dot + 1, value, rendered);
        free(rendered);
        if (at) {
            test_checks++;
            if (strstr(source, at + 1) == NULL)
                TEST_FAIL_("%s: %s.%s comes from \"%s\", expected \"%s\"",
                           c->name, spec, dot + 1, source, at + 1);
        }
    }
}

static void run_case(const cfg_case *c) {
    sg_config *cfg = sg_config_new();
    char path[300], *envbuf = NULL;
    const char **envp = make_env(c->env, &envbuf);
    int rc;
    test_current = c->name;
    if (c->json) {
        char *json = render(c->json);
        FILE *f;
        snprintf(path, sizeof path, "%s/tyk.conf", tmpdir);
        f = fopen(path, "w");
        fputs(json, f);
        fclose(f);
        free(json);
    }
    rc = sg_config_load(cfg, c->json ? path : NULL, c->shape, envp);
    test_checks++;
    if (rc != c->rc) {
        TEST_FAIL_("%s: code %s, expected %s; message: %s", c->name,
                   sg_errname(rc), sg_errname(c->rc), sg_errmsg(cfg));
    } else if (rc != SG_OK) {
        char *parts = strdup(c->expect), *part, *save = NULL;
        for (part = strtok_r(parts, "|", &save); part; part = strtok_r(NULL, "|", &save)) {
            test_checks++;
            if (strstr(sg_errmsg(cfg), part) == NULL)
                TEST_FAIL_("%s: message \"%s\" lacks \"%s\"", c->name, sg_errmsg(cfg), part);
        }
        /* a file's errors name the file */
        if (c->json && rc != SG_EENV && strstr(c->expect, "TYK_") == NULL)
            CHECK_CONTAINS(sg_errmsg(cfg), path);
        CHECK_INT(sg_config_upstream_count(cfg), 0);
        free(parts);
    } else {
        char *toks = strdup(c->expect), *tok, *save = NULL;
        for (tok = strtok_r(toks, ";", &save); tok; tok = strtok_r(NULL, ";", &save))
            check_expectation(c, cfg, tok);
        free(toks);
        CHECK(sg_config_dump(cfg) != NULL);
    }
    free(envbuf);
    sg_config_free(cfg);
    test_current = NULL;
}

/* ---- Go's integer and boolean syntax, on their own ------------------------ */

static void test_go_parse_int(void) {
    static const struct {
        const char *in;
        int rc;
        long long v;
    } v[] = {
        {"0", 0, 0},       {"10", 0, 10},     {"010", 0, 8},      {"-010", 0, -8},
        {"0x1F", 0, 31},   {"0X1f", 0, 31},   {"0o17", 0, 15},    {"0O17", 0, 15},
        {"0b101", 0, 5},   {"0B11", 0, 3},    {"1_000", 0, 1000}, {"0x_1F", 0, 31},
        {"0_10", 0, 8},    {"+5", 0, 5},      {"-0", 0, 0},       {"00", 0, 0},
        {"9223372036854775807", 0, 9223372036854775807LL},
        {"-9223372036854775808", 0, (-9223372036854775807LL - 1)},
        {"9223372036854775808", -2, 0},       {"0x8000000000000000", -2, 0},
        {"", -1, 0},       {"-", -1, 0},      {"+", -1, 0},       {"08", -1, 0},
        {"0x", -1, 0},     {"0b", -1, 0},     {"0o", -1, 0},      {"0b2", -1, 0},
        {"1__0", -1, 0},   {"_1", -1, 0},     {"1_", -1, 0},      {"0x_", -1, 0},
        {" 1", -1, 0},     {"1 ", -1, 0},     {"1.0", -1, 0},     {"1e3", -1, 0},
        {"abc", -1, 0},    {"--1", -1, 0},    {"0xg", -1, 0},     {"1_0x", -1, 0},
    };
    size_t i;
    for (i = 0; i < sizeof v / sizeof *v; i++) {
        long long out = 12345;
        int rc = sg_go_parse_int(v[i].in, &out);
        test_checks++;
        if (rc != v[i].rc || (rc == 0 && out != v[i].v))
            TEST_FAIL_("ParseInt(\"%s\"): rc %d value %lld, expected rc %d value %lld",
                       v[i].in, rc, out, v[i].rc, v[i].v);
    }
}

static void test_go_parse_bool(void) {
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};
    static const char *const bad[] = {"", "yes", "no", "on", "off", "tRUE", " true", "2", "y"};
    size_t i;
    int b;
    for (i = 0; i < 6; i++) {
        CHECK(sg_go_parse_bool(yes[i], &b) == 0 && b == 1);
        CHECK(sg_go_parse_bool(no[i], &b) == 0 && b == 0);
    }
    for (i = 0; i < sizeof bad / sizeof *bad; i++) CHECK(sg_go_parse_bool(bad[i], &b) == -1);
}

/* The dump names every field with its source and masks secrets. */
static void test_dump(void) {
    sg_config *cfg = sg_config_new();
    const char *env[] = {"TYK_GW_STORAGE_PASSWORD=hunter2",
                         "TYK_GW_STORAGE_SENTINELPASSWORD=sentinel-secret", NULL};
    const char *dump;
    char path[300];
    FILE *f;
    snprintf(path, sizeof path, "%s/dump.conf", tmpdir);
    f = fopen(path, "w");
    fputs("{\"storage\": {\"addrs\": [\"a:1\", \"b:2\"], \"enable_cluster\": true}}", f);
    fclose(f);
    CHECK_INT(sg_config_load(cfg, path, SG_SHAPE_AUTO, env), SG_OK);
    dump = sg_config_dump(cfg);
    CHECK_CONTAINS(dump, "mode = cluster");
    CHECK_CONTAINS(dump, "addresses = a:1,b:2    # file ");
    CHECK_CONTAINS(dump, "password = ********    # env TYK_GW_STORAGE_PASSWORD");
    CHECK_CONTAINS(dump, "timeout = 5    # default");
    CHECK(strstr(dump, "hunter2") == NULL);
    CHECK(strstr(dump, "sentinel-secret") == NULL);
    CHECK_STR(sg_config_upstream_name(cfg, 0), "default");
    CHECK(sg_config_upstream_name(cfg, 1) == NULL);
    CHECK_INT(sg_config_get(cfg, "default", "no_such_field", 0, NULL, NULL), SG_EINVAL);
    CHECK_CONTAINS(sg_errmsg(cfg), "no_such_field");
    CHECK_INT(sg_config_shape_of(cfg), SG_SHAPE_GATEWAY);
    /* a reload replaces everything */
    CHECK_INT(sg_config_load(cfg, NULL, SG_SHAPE_DASHBOARD, env), SG_OK);
    CHECK_INT(sg_config_shape_of(cfg), SG_SHAPE_DASHBOARD);
    sg_config_free(cfg);
    sg_config_free(NULL);
}

static void test_missing_file(void) {
    sg_config *cfg = sg_config_new();
    CHECK_INT(sg_config_load(cfg, "/nonexistent/tyk.conf", 0, NULL), SG_EIO);
    CHECK_CONTAINS(sg_errmsg(cfg), "/nonexistent/tyk.conf: cannot open: No such file");
    CHECK_INT(sg_errcode(cfg), SG_EIO);
    CHECK_INT(sg_config_load(cfg, NULL, 99, NULL), SG_EINVAL);
    sg_config_free(cfg);
}

/* Every allocation along a full load can fail: the load reports SG_ENOMEM
 * and nothing leaks (LeakSanitizer checks the second half). */
static void test_out_of_memory(void) {
    const char *env[] = {"TYK_GW_STORAGE_MAXACTIVE=010", "TYK_GW_STORAGE_HOSTS=a:1,b:2",
                         "TYK_GW_CACHESTORAGE_PORT=5", NULL};
    char path[300];
    unsigned long total, n;
    FILE *f;
    sg_config *cfg;
    snprintf(path, sizeof path, "%s/oom.conf", tmpdir);
    f = fopen(path, "w");
    fputs("{\"storage\": {\"addrs\": [\"a:1\"], \"enable_cluster\": true, \"password\": "
          "\"x\"}, \"enable_separate_cache_store\": true, \"cache_storage\": {}}",
          f);
    fclose(f);
    sg_alloc_fail_at(0);
    cfg = sg_config_new();
    CHECK_INT(sg_config_load(cfg, path, 0, env), SG_OK);
    CHECK(sg_config_dump(cfg) != NULL);
    sg_config_free(cfg);
    total = sg_alloc_fail_at(0);
    CHECK(total > 20);
    for (n = 1; n <= total; n++) {
        int rc;
        sg_alloc_fail_at(n);
        cfg = sg_config_new();
        if (cfg == NULL) continue; /* the first allocation failed */
        rc = sg_config_load(cfg, path, 0, env);
        if (rc == SG_OK) {
            if (sg_config_dump(cfg) == NULL) CHECK_INT(sg_errcode(cfg), SG_ENOMEM);
        } else {
            test_checks++;
            if (rc != SG_ENOMEM)
                TEST_FAIL_("allocation %lu failing gave %s: %s", n, sg_errname(rc),
                           sg_errmsg(cfg));
        }
        sg_config_free(cfg);
    }
    sg_alloc_fail_at(0);
}

int main(void) {
    size_t i, bad = 0;
    char tls[300];
    FILE *f;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sg-ut-config-XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(tls, sizeof tls, "%s/ca.pem", tmpdir);
    f = fopen(tls, "w");
    fputs("not really a certificate; the reader only checks it is readable\n", f);
    fclose(f);
    TLS_FILE = tls;

    for (i = 0; i < sizeof cases / sizeof *cases; i++) {
        run_case(&cases[i]);
        bad += cases[i].rc != SG_OK;
    }
    printf("config cases: %zu (%zu bad input)\n", sizeof cases / sizeof *cases, bad);
    RUN(test_go_parse_int);
    RUN(test_go_parse_bool);
    RUN(test_dump);
    RUN(test_missing_file);
    RUN(test_out_of_memory);
    {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    return test_report();
}
