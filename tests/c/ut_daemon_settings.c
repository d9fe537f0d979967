/*
 * ut_daemon_settings.c — slotgated's own settings (daemon/settings.c),
 * table-driven: each case is a file (or none), an environment, and what must
 * come out: values with their sources, the parsed addresses and users, and
 * warnings; or the error code and the words of its message.
 *
 * In the JSON of a case, ' stands for " (readability); ` stands for a real '.
 * %POL1 and %POL2 are readable scripts, %DIR a directory, %NONE a path that
 * does not exist. Expectations (good cases), separated by ';':
 *   KEY=VALUE          sg_daemon_settings_get(KEY) is VALUE (secrets masked)
 *   KEY=VALUE@SRC      ... and its source contains SRC
 *   KEY@SRC            only the source
 *   U:KEY=VALUE        the unmasked value
 *   #KEY=N             the list KEY (listen, policy, users) has N items
 *   L:I=HOST PORT      listen[I] is TCP on HOST (no brackets) and PORT
 *   L:I=unix PATH      listen[I] is the Unix socket PATH
 *   T:I=0|1            listen[I] is plain (0) or TLS (1)
 *   M=HOST PORT        the metrics address; M=off: none
 *   P:I=NAME POLICY    users[I] is NAME with the policy POLICY ("-": none)
 *   UID=N              the uid of user
 *   W:TEXT             some warning contains TEXT
 *   W0                 there are no warnings
 * Bad cases: the code, and every '|'-separated part of expect appears in
 * the message.
 *
 * The reader is compiled into this test (the unit tests link the core only).
 */
#include "../../daemon/settings.c"

#include <sys/stat.h>
#include <unistd.h>

#include "test.h"

typedef struct ds_case {
    const char *name;
    const char *json; /* NULL: no file */
    const char *env;  /* "NAME=value" lines separated by '\n'; NULL: none */
    int rc;
    const char *expect;
} ds_case;

#define SG(body) "{'storage': {'port': 6379}, 'slotgate': {" body "}}"
#define LONG_PATH /* 107 bytes: the most sun_path holds */                                   \
    "/run/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" \
    "xxxxxxxxxxxxxxxxx.sock"

static const ds_case cases[] = {
    /* ---- defaults ---------------------------------------------------------- */
    {"defaults, no file", NULL, NULL, SG_OK,
     "listen=127.0.0.1:6380@default;L:0=127.0.0.1 6380;#listen=1;unix_mode=0660@default;"
     "threads@cores online;policy=@default;#policy=0;requirepass=;users=;#users=0;"
     "max_clients=10000;max_request_bytes=536870912;client_idle_timeout=0;"
     "client_output_limit=67108864;pubsub_output_limit=33554432;cache_max_bytes=67108864;"
     "metrics=;M=off;"
     "log_level=info;syslog=false;user=;shutdown_timeout=10@default;tls_cert_file=;"
     "tls_key_file=;tls_key_file_pass=;tls_ca_file=;tls_verify_clients=no@no tls_ca_file;"
     "tls_protocols=TLSv1.2 TLSv1.3@default;tls_ciphers=;tls_ciphersuites=;T:0=0;W0"},
    {"file without a slotgate object", "{'storage': {'port': 1}}", NULL, SG_OK,
     "listen=127.0.0.1:6380@default;W0"},
    {"slotgate null", "{'slotgate': null}", NULL, SG_OK, "threads@default;W0"},
    {"empty slotgate object", SG(""), NULL, SG_OK, "listen@default;W0"},
    {"a dashboard file's slotgate object", "{'redis_port': 1, 'slotgate': {'threads': 3}}", NULL,
     SG_OK, "threads=3@file"},
    {"a pump file's slotgate object",
     "{'analytics_storage_config': {}, 'slotgate': {'threads': 5}}", NULL, SG_OK, "threads=5"},
    {"upstreams are the core's: no warning",
     SG("'upstreams': {'sessions': {'port': 1}}, 'threads': 2"), NULL, SG_OK,
     "threads=2;W0"},
    /* ---- listen -------------------------------------------------------------- */
    {"listen from the file", SG("'listen': ['127.0.0.1:7000', '[::1]:7001', 'unix:/run/sg.sock']"),
     NULL, SG_OK,
     "listen=127.0.0.1:7000,[::1]:7001,unix:/run/sg.sock@file;listen@:1:52;#listen=3;"
     "L:0=127.0.0.1 7000;L:1=::1 7001;L:2=unix /run/sg.sock;W0"},
    {"listen on a host name", SG("'listen': ['localhost:6380']"), NULL, SG_OK,
     "L:0=localhost 6380;W0"},
    {"listen everywhere warns without a password", SG("'listen': ['0.0.0.0:6380']"), NULL, SG_OK,
     "L:0=0.0.0.0 6380;W:clients reaching 0.0.0.0:6380 need no password"},
    {"listen everywhere with a password", SG("'listen': ['[::]:6380'], 'requirepass': 'x'"), NULL,
     SG_OK, "L:0=:: 6380;W0"},
    {"listen everywhere with users",
     SG("'listen': ['10.1.2.3:6380'], 'users': {'a': {'password': 'p'}}"), NULL, SG_OK, "W0"},
    {"SLOTGATE_LISTEN over the file", SG("'listen': ['127.0.0.1:1']"),
     "SLOTGATE_LISTEN=127.0.0.1:6380,[::1]:6380,unix:/run/slotgate.sock", SG_OK,
     "listen=127.0.0.1:6380,[::1]:6380,unix:/run/slotgate.sock@env SLOTGATE_LISTEN;#listen=3;"
     "L:2=unix /run/slotgate.sock"},
    {"SLOTGATE_LISTEN items trimmed", NULL, "SLOTGATE_LISTEN= 127.0.0.1:1 ,\tunix:/x ", SG_OK,
     "listen=127.0.0.1:1,unix:/x;L:1=unix /x"},
    {"unix path of 107 bytes", SG("'listen': ['unix:" LONG_PATH "']"), NULL, SG_OK,
     "L:0=unix " LONG_PATH},
    {"port with leading zeros", NULL, "SLOTGATE_LISTEN=127.0.0.1:06380", SG_OK,
     "L:0=127.0.0.1 6380"},
    /* ---- TLS -------------------------------------------------------------------------- */
    {"a tls: address beside a plain one",
     SG("'listen': ['127.0.0.1:1', 'tls:127.0.0.1:2'], 'tls_cert_file': '%POL1', "
        "'tls_key_file': '%POL2'"),
     NULL, SG_OK,
     "listen=127.0.0.1:1,tls:127.0.0.1:2;L:1=127.0.0.1 2;T:0=0;T:1=1;tls_cert_file=%POL1@file;"
     "tls_key_file=%POL2;tls_verify_clients=no@default;W0"},
    {"tls: from the environment, IPv6, CA: clients verified by default", NULL,
     "SLOTGATE_LISTEN=tls:[::1]:6443\nSLOTGATE_TLSCERTFILE=%POL1\nSLOTGATE_TLSKEYFILE=%POL2\n"
     "SLOTGATE_TLSCAFILE=%POL1",
     SG_OK,
     "L:0=::1 6443;T:0=1;tls_ca_file=%POL1@env SLOTGATE_TLSCAFILE;"
     "tls_verify_clients=yes@default (yes: tls_ca_file is set);W0"},
    {"tls_verify_clients optional, protocols, ciphers, key passphrase masked",
     SG("'listen': ['tls:127.0.0.1:2'], 'tls_cert_file': '%POL1', 'tls_key_file': '%POL2', "
        "'tls_ca_file': '%POL1', 'tls_verify_clients': 'optional', 'tls_protocols': 'TLSv1.3', "
        "'tls_ciphers': 'HIGH:!aNULL', 'tls_ciphersuites': 'TLS_AES_256_GCM_SHA384', "
        "'tls_key_file_pass': 'opensesame'"),
     NULL, SG_OK,
     "tls_verify_clients=optional@file;tls_protocols=TLSv1.3@file;tls_ciphers=HIGH:!aNULL;"
     "tls_ciphersuites=TLS_AES_256_GCM_SHA384;tls_key_file_pass=********@file;"
     "U:tls_key_file_pass=opensesame;W0"},
    {"tls_verify_clients false in the file, no over a CA",
     SG("'listen': ['tls:127.0.0.1:2'], 'tls_cert_file': '%POL1', 'tls_key_file': '%POL2', "
        "'tls_ca_file': '%POL1', 'tls_verify_clients': false"),
     NULL, SG_OK, "tls_verify_clients=no@file"},
    {"SLOTGATE_TLSVERIFYCLIENTS words and case", SG("'tls_ca_file': '%POL1'"),
     "SLOTGATE_LISTEN=tls:127.0.0.1:2\nSLOTGATE_TLSCERTFILE=%POL1\nSLOTGATE_TLSKEYFILE=%POL2\n"
     "SLOTGATE_TLSVERIFYCLIENTS=Optional\nSLOTGATE_TLSPROTOCOLS=tlsv1.2, TLSv1.3",
     SG_OK,
     "tls_verify_clients=optional@env SLOTGATE_TLSVERIFYCLIENTS;"
     "tls_protocols=TLSv1.2 TLSv1.3@env"},
    {"SLOTGATE_TLSVERIFYCLIENTS empty is the default", SG("'tls_ca_file': '%POL1'"),
     "SLOTGATE_LISTEN=tls:127.0.0.1:2\nSLOTGATE_TLSCERTFILE=%POL1\nSLOTGATE_TLSKEYFILE=%POL2\n"
     "SLOTGATE_TLSVERIFYCLIENTS=",
     SG_OK, "tls_verify_clients=yes"},
    {"TLS settings without a tls: address warn",
     SG("'tls_cert_file': '%POL1', 'tls_key_file': '%POL2'"), NULL, SG_OK,
     "W:slotgate.tls_cert_file has no effect: no tls: address in listen"},
    {"an open tls: address without client certificates warns",
     SG("'listen': ['tls:0.0.0.0:6443'], 'tls_cert_file': '%POL1', 'tls_key_file': '%POL2'"),
     NULL, SG_OK, "W:clients reaching tls:0.0.0.0:6443 need no password"},
    {"an open tls: address with client certificates does not",
     SG("'listen': ['tls:0.0.0.0:6443'], 'tls_cert_file': '%POL1', 'tls_key_file': '%POL2', "
        "'tls_ca_file': '%POL1'"),
     NULL, SG_OK, "W0"},
    /* ---- unix_mode ---------------------------------------------------------------- */
    {"unix_mode from the file",
     SG("'listen': ['unix:/run/x.sock'], 'unix_mode': '0600'"), NULL, SG_OK,
     "unix_mode=0600@file;W0"},
    {"unix_mode without the leading 0", SG("'listen': ['unix:/x'], 'unix_mode': '640'"), NULL,
     SG_OK, "unix_mode=0640"},
    {"unix_mode 0o", NULL, "SLOTGATE_LISTEN=unix:/x\nSLOTGATE_UNIXMODE=0o666", SG_OK,
     "unix_mode=0666@env SLOTGATE_UNIXMODE"},
    {"unix_mode without a unix listener warns", SG("'unix_mode': '0600'"), NULL, SG_OK,
     "W:unix_mode 0600 has no effect"},
    /* ---- threads ------------------------------------------------------------------- */
    {"threads from the file", SG("'threads': 4"), NULL, SG_OK, "threads=4@file"},
    {"SLOTGATE_THREADS hex", SG("'threads': 4"), "SLOTGATE_THREADS=0x10", SG_OK,
     "threads=16@env SLOTGATE_THREADS"},
    {"SLOTGATE_THREADS=010 is octal 8", NULL, "SLOTGATE_THREADS=010", SG_OK, "threads=8"},
    {"SLOTGATE_THREADS underscores", NULL, "SLOTGATE_THREADS=2_56", SG_OK, "threads=256"},
    {"threads 1", SG("'threads': 1"), NULL, SG_OK, "threads=1"},
    /* ---- policy ---------------------------------------------------------------------- */
    {"policy scripts from the file", SG("'policy': ['%POL1', '%POL2']"), NULL, SG_OK,
     "policy=%POL1,%POL2@file;#policy=2"},
    {"SLOTGATE_POLICY", SG("'policy': ['%POL1']"), "SLOTGATE_POLICY=%POL2", SG_OK,
     "policy=%POL2@env SLOTGATE_POLICY;#policy=1"},
    {"blank SLOTGATE_POLICY clears the file's", SG("'policy': ['%POL1']"), "SLOTGATE_POLICY=",
     SG_OK, "policy=@env SLOTGATE_POLICY;#policy=0"},
    /* ---- requirepass and users ---------------------------------------------------------- */
    {"requirepass masked", SG("'requirepass': 'hunter2'"), NULL, SG_OK,
     "requirepass=********@file;U:requirepass=hunter2"},
    {"empty SLOTGATE_REQUIREPASS clears the file's", SG("'requirepass': 'hunter2'"),
     "SLOTGATE_REQUIREPASS=", SG_OK, "U:requirepass=@env SLOTGATE_REQUIREPASS"},
    {"users from the file",
     SG("'users': {'alice': {'password': 'a1', 'policy': '%POL1'}, 'bob': {'password': 'b2'}}"),
     NULL, SG_OK,
     "#users=2;P:0=alice %POL1;P:1=bob -;users=alice:******** (policy %POL1), bob:********@file;"
     "U:users=alice:a1 (policy %POL1), bob:b2"},
    {"user policy empty is none", SG("'users': {'c': {'password': 'x', 'policy': ''}}"), NULL,
     SG_OK, "P:0=c -"},
    {"no users", SG("'users': {}"), NULL, SG_OK, "#users=0;users=@file"},
    {"unknown key in a user warned", SG("'users': {'c': {'password': 'x', 'pasword': 'y'}}"),
     NULL, SG_OK, "W:slotgate.users.c: unknown key \"pasword\""},
    {"SLOTGATE_USERS replaces the file's",
     SG("'users': {'alice': {'password': 'a1', 'policy': '%POL1'}}"),
     "SLOTGATE_USERS=carol:c3,dave:d4", SG_OK,
     "#users=2;P:0=carol -;P:1=dave -;users=carol:********, dave:********@env SLOTGATE_USERS"},
    {"SLOTGATE_USERS password with ':' and spaces", NULL, "SLOTGATE_USERS=eve:a:b c ", SG_OK,
     "U:users=eve:a:b c "},
    {"user default alone", NULL, "SLOTGATE_USERS=default:pw", SG_OK, "P:0=default -"},
    /* ---- limits ------------------------------------------------------------------------ */
    {"limits from the file",
     SG("'max_clients': 1, 'max_request_bytes': 1024, 'client_idle_timeout': 300, "
        "'client_output_limit': 0, 'pubsub_output_limit': 1048576"),
     NULL, SG_OK,
     "max_clients=1@file;max_request_bytes=1024;client_idle_timeout=300;client_output_limit=0;"
     "pubsub_output_limit=1048576"},
    {"limits from the environment", SG("'max_clients': 5"),
     "SLOTGATE_MAXCLIENTS=1_000_000\nSLOTGATE_MAXREQUESTBYTES=0x100000\n"
     "SLOTGATE_CLIENTIDLETIMEOUT=0\nSLOTGATE_CLIENTOUTPUTLIMIT=1099511627776\n"
     "SLOTGATE_PUBSUBOUTPUTLIMIT=0b1",
     SG_OK,
     "max_clients=1000000@env SLOTGATE_MAXCLIENTS;max_request_bytes=1048576;"
     "client_idle_timeout=0@env;client_output_limit=1099511627776;pubsub_output_limit=1"},
    {"shutdown_timeout bounds", SG("'shutdown_timeout': 0"), NULL, SG_OK, "shutdown_timeout=0"},
    {"shutdown_timeout env", NULL, "SLOTGATE_SHUTDOWNTIMEOUT=3600", SG_OK,
     "shutdown_timeout=3600@env"},
    /* ---- metrics, logging, user --------------------------------------------------------- */
    {"metrics address", SG("'metrics': '127.0.0.1:9121'"), NULL, SG_OK,
     "metrics=127.0.0.1:9121@file;M=127.0.0.1 9121"},
    {"metrics IPv6", NULL, "SLOTGATE_METRICS=[::1]:9121", SG_OK, "M=::1 9121"},
    {"metrics empty is off", SG("'metrics': ''"), NULL, SG_OK, "metrics=@file;M=off"},
    {"empty SLOTGATE_METRICS turns the file's off", SG("'metrics': '127.0.0.1:9121'"),
     "SLOTGATE_METRICS=", SG_OK, "M=off;metrics=@env SLOTGATE_METRICS"},
    {"metrics on another port of the listen host", SG("'metrics': '127.0.0.1:6381'"), NULL,
     SG_OK, "M=127.0.0.1 6381"},
    {"log_level debug", SG("'log_level': 'debug'"), NULL, SG_OK, "log_level=debug@file"},
    {"log_level warn from env", SG("'log_level': 'debug'"), "SLOTGATE_LOGLEVEL=warn", SG_OK,
     "log_level=warn@env SLOTGATE_LOGLEVEL"},
    {"log_level error", NULL, "SLOTGATE_LOGLEVEL=error", SG_OK, "log_level=error"},
    {"syslog true", SG("'syslog': true"), NULL, SG_OK, "syslog=true@file"},
    {"SLOTGATE_SYSLOG=T", NULL, "SLOTGATE_SYSLOG=T", SG_OK, "syslog=true@env"},
    {"SLOTGATE_SYSLOG=0 over the file", SG("'syslog': true"), "SLOTGATE_SYSLOG=0", SG_OK,
     "syslog=false@env"},
    {"user nobody", SG("'user': 'nobody'"), NULL, SG_OK, "user=nobody@file;UID=65534"},
    {"SLOTGATE_USER root", NULL, "SLOTGATE_USER=root", SG_OK, "user=root@env;UID=0"},
    /* ---- how the file is read ------------------------------------------------------------- */
    {"keys without regard to case", SG("'Threads': 3, 'LOG_LEVEL': 'warn'"), NULL, SG_OK,
     "threads=3;log_level=warn"},
    {"repeated key: the last wins", SG("'threads': 3, 'threads': 5"), NULL, SG_OK,
     "threads=5@:1:67"},
    {"null leaves the default", SG("'threads': null, 'listen': null"), NULL, SG_OK,
     "listen=127.0.0.1:6380@default;threads@default"},
    {"unknown key warned", SG("'thread': 3"), NULL, SG_OK,
     "W::1:42: slotgate: unknown key \"thread\" ignored"},
    {"a variable set to the same value still says env", SG("'threads': 2"), "SLOTGATE_THREADS=2",
     SG_OK, "threads=2@env SLOTGATE_THREADS"},

    /* ---- bad: listen ------------------------------------------------------------------ */
    {"listen as a string", SG("'listen': '127.0.0.1:6380'"), NULL, SG_ECONFIG,
     ":1:52: slotgate.listen: expected an array of addresses|found string \"127.0.0.1:6380\""},
    {"listen item a number", SG("'listen': ['127.0.0.1:1', 6380]"), NULL, SG_ECONFIG,
     ":1:68: slotgate.listen: expected a string, found number 6380"},
    {"listen empty", SG("'listen': []"), NULL, SG_ECONFIG,
     ":1:52: slotgate.listen: no address to listen on"},
    {"listen without a port", SG("'listen': ['127.0.0.1:1', 'localhost']"), NULL, SG_ECONFIG,
     ":1:68: slotgate.listen: item 2: \"localhost\" has no port"},
    {"listen port 0", SG("'listen': ['127.0.0.1:0']"), NULL, SG_ECONFIG,
     "item 1: \"127.0.0.1:0\": the port must be a number from 1 to 65535"},
    {"listen port 65536", NULL, "SLOTGATE_LISTEN=127.0.0.1:65536", SG_ECONFIG,
     "SLOTGATE_LISTEN=\"127.0.0.1:65536\": slotgate.listen: item 1: \"127.0.0.1:65536\": the port"},
    {"listen port a name", NULL, "SLOTGATE_LISTEN=127.0.0.1:redis", SG_ECONFIG,
     "the port must be a number"},
    {"listen IPv6 without brackets", NULL, "SLOTGATE_LISTEN=::1:6380", SG_ECONFIG,
     "SLOTGATE_LISTEN=\"::1:6380\"|an IPv6 host goes in brackets"},
    {"listen bracket not closed", NULL, "SLOTGATE_LISTEN=[::1:6380", SG_ECONFIG,
     "\"[::1:6380\" is not HOST:PORT"},
    {"listen bad IPv6", NULL, "SLOTGATE_LISTEN=[::g]:6380", SG_ECONFIG,
     "\"::g\" is not an IPv6 address"},
    {"listen bad IPv4", NULL, "SLOTGATE_LISTEN=127.0.0.256:6380", SG_ECONFIG,
     "\"127.0.0.256\" is not an IPv4 address"},
    {"listen bad host name", SG("'listen': ['my host:1']"), NULL, SG_ECONFIG,
     "\"my host\" is not a host name or an IP address"},
    {"listen no host", NULL, "SLOTGATE_LISTEN=:6380", SG_ECONFIG,
     "item 1: no host (for every interface: 0.0.0.0"},
    {"listen star", NULL, "SLOTGATE_LISTEN=*:6380", SG_ECONFIG, "no host"},
    {"listen unix path not absolute", SG("'listen': ['unix:run/slotgate.sock']"), NULL, SG_ECONFIG,
     ":1:53: slotgate.listen: item 1: \"unix:run/slotgate.sock\": the socket path must be "
     "absolute"},
    {"listen unix path too long", NULL, "SLOTGATE_LISTEN=unix:" LONG_PATH "x", SG_ECONFIG,
     "the socket path is longer than 107 bytes"},
    {"listen twice", NULL, "SLOTGATE_LISTEN=127.0.0.1:1,unix:/a,127.0.0.1:1", SG_ECONFIG,
     "item 3: \"127.0.0.1:1\" is also item 1"},
    {"listen env empty item", NULL, "SLOTGATE_LISTEN=127.0.0.1:1,,127.0.0.1:2", SG_EENV,
     "SLOTGATE_LISTEN=\"127.0.0.1:1,,127.0.0.1:2\": expected a comma-separated list|item 2"},
    {"listen env trailing comma", NULL, "SLOTGATE_LISTEN=127.0.0.1:1,", SG_EENV, "(item 2)"},
    {"listen env blank", SG("'listen': ['127.0.0.1:1']"), "SLOTGATE_LISTEN=", SG_ECONFIG,
     "SLOTGATE_LISTEN=\"\": slotgate.listen: no address to listen on"},
    /* ---- bad: TLS ------------------------------------------------------------------------ */
    {"tls: without a certificate", SG("'listen': ['127.0.0.1:1', 'tls:127.0.0.1:2']"), NULL,
     SG_ECONFIG,
     ":1:68: slotgate.listen: item 2: \"tls:127.0.0.1:2\" needs tls_cert_file and tls_key_file"},
    {"a certificate without its key", NULL,
     "SLOTGATE_LISTEN=tls:127.0.0.1:2\nSLOTGATE_TLSCERTFILE=%POL1", SG_ECONFIG,
     "SLOTGATE_TLSCERTFILE=\"%POL1\": slotgate.tls_cert_file: a certificate without its key"},
    {"a key without its certificate", SG("'tls_key_file': '%POL2'"), NULL, SG_ECONFIG,
     "slotgate.tls_key_file: a key without its certificate"},
    {"a certificate that is not there", SG("'tls_cert_file': '%NONE'"), NULL, SG_ECONFIG,
     "slotgate.tls_cert_file: cannot read \"%NONE\": No such file or directory"},
    {"a CA that is a directory", NULL, "SLOTGATE_TLSCAFILE=%DIR", SG_ECONFIG,
     "SLOTGATE_TLSCAFILE=\"%DIR\": slotgate.tls_ca_file: \"%DIR\" is a directory"},
    {"verify clients without a CA", NULL,
     "SLOTGATE_LISTEN=tls:127.0.0.1:2\nSLOTGATE_TLSCERTFILE=%POL1\nSLOTGATE_TLSKEYFILE=%POL2\n"
     "SLOTGATE_TLSVERIFYCLIENTS=yes",
     SG_ECONFIG,
     "SLOTGATE_TLSVERIFYCLIENTS=\"yes\": slotgate.tls_verify_clients: yes needs tls_ca_file"},
    {"verify clients a word", NULL, "SLOTGATE_TLSVERIFYCLIENTS=maybe", SG_EENV,
     "SLOTGATE_TLSVERIFYCLIENTS=\"maybe\": expected yes, no or optional"},
    {"verify clients a number", SG("'tls_verify_clients': 1"), NULL, SG_ECONFIG,
     "slotgate.tls_verify_clients: expected yes, no or optional, found number 1"},
    {"protocols SSLv3", NULL, "SLOTGATE_TLSPROTOCOLS=TLSv1.2 SSLv3", SG_EENV,
     "SLOTGATE_TLSPROTOCOLS=\"TLSv1.2 SSLv3\": expected TLS versions|\"SSLv3\" is not TLSv1"},
    {"protocols none", NULL, "SLOTGATE_TLSPROTOCOLS= , ", SG_EENV, "no protocol named"},
    {"protocols a list in the file", SG("'tls_protocols': ['TLSv1.3']"), NULL, SG_ECONFIG,
     "slotgate.tls_protocols: expected TLS versions such as"},
    {"tls: on a Unix socket", NULL, "SLOTGATE_LISTEN=tls:unix:/run/x.sock", SG_ECONFIG,
     "item 1: \"tls:unix:/run/x.sock\": TLS is for TCP addresses"},
    {"tls: without a port", NULL, "SLOTGATE_LISTEN=tls:localhost", SG_ECONFIG,
     "\"tls:localhost\" has no port"},
    {"tls: and plain on one port", NULL, "SLOTGATE_LISTEN=127.0.0.1:1,tls:127.0.0.1:1", SG_ECONFIG,
     "item 2: \"tls:127.0.0.1:1\" is also item 1"},
    {"metrics over tls:", NULL, "SLOTGATE_METRICS=tls:127.0.0.1:9121", SG_ECONFIG,
     "expected HOST:PORT (plain HTTP, not TLS)"},
    /* ---- bad: unix_mode, threads ------------------------------------------------------- */
    {"unix_mode as a number", SG("'unix_mode': 432"), NULL, SG_ECONFIG,
     ":1:55: slotgate.unix_mode: expected an octal mode such as \"0660\"|as a string, found "
     "number 432"},
    {"unix_mode not octal", SG("'unix_mode': '0668'"), NULL, SG_ECONFIG,
     ":1:55: slotgate.unix_mode: expected an octal mode|found string \"0668\""},
    {"unix_mode above 0777", NULL, "SLOTGATE_UNIXMODE=01777", SG_EENV,
     "SLOTGATE_UNIXMODE=\"01777\": expected an octal mode"},
    {"unix_mode words", NULL, "SLOTGATE_UNIXMODE=rw-rw----", SG_EENV,
     "SLOTGATE_UNIXMODE=\"rw-rw----\""},
    {"unix_mode empty", NULL, "SLOTGATE_UNIXMODE=", SG_EENV, "SLOTGATE_UNIXMODE=\"\""},
    {"threads 0", SG("'threads': 0"), NULL, SG_ECONFIG,
     ":1:53: slotgate.threads: 0 is out of range (expected 1 to 256)"},
    {"threads 1000", NULL, "SLOTGATE_THREADS=1000", SG_ECONFIG,
     "SLOTGATE_THREADS=\"1000\": slotgate.threads: 1000 is out of range (expected 1 to 256)"},
    {"threads negative", NULL, "SLOTGATE_THREADS=-2", SG_ECONFIG, "-2 is out of range"},
    {"threads as a string", SG("'threads': '4'"), NULL, SG_ECONFIG,
     "slotgate.threads: expected an integer, found string \"4\""},
    {"threads with a fraction", SG("'threads': 2.5"), NULL, SG_ECONFIG,
     "expected an integer (no fraction or exponent), found number 2.5"},
    {"SLOTGATE_THREADS a word", NULL, "SLOTGATE_THREADS=four", SG_EENV,
     "SLOTGATE_THREADS=\"four\": expected an integer"},
    {"SLOTGATE_THREADS empty", NULL, "SLOTGATE_THREADS=", SG_EENV, "SLOTGATE_THREADS=\"\""},
    {"SLOTGATE_THREADS bad octal", NULL, "SLOTGATE_THREADS=08", SG_EENV, "SLOTGATE_THREADS=\"08\""},
    /* ---- bad: policy ----------------------------------------------------------------------- */
    {"policy file missing", SG("'policy': ['%POL1', '%NONE']"), NULL, SG_ECONFIG,
     "slotgate.policy: item 2: cannot read \"%NONE\": No such file or directory"},
    {"policy a directory", NULL, "SLOTGATE_POLICY=%DIR", SG_ECONFIG,
     "SLOTGATE_POLICY=\"%DIR\": slotgate.policy: item 1: \"%DIR\" is a directory"},
    {"policy as a string", SG("'policy': '%POL1'"), NULL, SG_ECONFIG,
     "slotgate.policy: expected an array of script paths"},
    {"policy empty path", SG("'policy': ['']"), NULL, SG_ECONFIG, "item 1: an empty path"},
    {"policy env empty item", NULL, "SLOTGATE_POLICY=%POL1,,%POL2", SG_EENV,
     "SLOTGATE_POLICY=|(item 2)"},
    /* ---- bad: requirepass, users ---------------------------------------------------------- */
    {"requirepass a number", SG("'requirepass': 1234"), NULL, SG_ECONFIG,
     "slotgate.requirepass: expected a string, found number 1234"},
    {"users an array", SG("'users': ['alice']"), NULL, SG_ECONFIG,
     "slotgate.users: expected an object of name: {"},
    {"user a string", SG("'users': {'alice': 'pw'}"), NULL, SG_ECONFIG,
     "slotgate.users: expected user \"alice\" as {|found a string"},
    {"user password a number", SG("'users': {'alice': {'password': 1}}"), NULL, SG_ECONFIG,
     "expected user \"alice\": the password as a string, found number 1"},
    {"user without password", SG("'users': {'alice': {'policy': '%POL1'}}"), NULL, SG_ECONFIG,
     ":1:52: slotgate.users: user \"alice\" has no password"},
    {"user empty password", SG("'users': {'a': {'password': 'x'}, 'b': {'password': ''}}"), NULL,
     SG_ECONFIG, ":1:76: slotgate.users: user \"b\" has no password"},
    {"user bad name", SG("'users': {'al ice': {'password': 'x'}}"), NULL, SG_ECONFIG,
     "user 1: \"al ice\" is not a user name"},
    {"user twice", SG("'users': {'a': {'password': 'x'}, 'a': {'password': 'y'}}"), NULL,
     SG_ECONFIG, ":1:76: slotgate.users: user \"a\" is given twice"},
    {"user policy unreadable", SG("'users': {'a': {'password': 'x', 'policy': '%NONE'}}"), NULL,
     SG_ECONFIG, "user \"a\": policy: cannot read \"%NONE\""},
    {"users env without ':'", NULL, "SLOTGATE_USERS=alice:pw,bob", SG_EENV,
     "SLOTGATE_USERS (value not shown): expected NAME:PASSWORD|item 2 has no `:`"},
    {"users env empty item", NULL, "SLOTGATE_USERS=alice:pw,", SG_EENV, "item 2 is empty"},
    {"users env empty name", NULL, "SLOTGATE_USERS=:pw", SG_ECONFIG,
     "SLOTGATE_USERS (value not shown): slotgate.users: user 1: \"\" is not a user name"},
    {"users env empty password", NULL, "SLOTGATE_USERS=alice:", SG_ECONFIG,
     "user \"alice\" has no password"},
    {"user default with requirepass", SG("'requirepass': 'x'"), "SLOTGATE_USERS=default:y",
     SG_ECONFIG,
     "SLOTGATE_USERS (value not shown)|user \"default\" and requirepass both set the password "
     "of the default user"},
    /* ---- bad: limits ---------------------------------------------------------------------- */
    {"max_clients 0", SG("'max_clients': 0"), NULL, SG_ECONFIG,
     "slotgate.max_clients: 0 is out of range (expected 1 to 1000000)"},
    {"max_request_bytes too small", NULL, "SLOTGATE_MAXREQUESTBYTES=100", SG_ECONFIG,
     "SLOTGATE_MAXREQUESTBYTES=\"100\": slotgate.max_request_bytes: 100 is out of range"},
    {"max_request_bytes with a unit", NULL, "SLOTGATE_MAXREQUESTBYTES=512mb", SG_EENV,
     "SLOTGATE_MAXREQUESTBYTES=\"512mb\": expected a number of bytes"},
    {"client_idle_timeout negative", SG("'client_idle_timeout': -1"), NULL, SG_ECONFIG,
     "slotgate.client_idle_timeout: -1 is out of range (expected 0 to 31536000)"},
    {"client_output_limit above 1 TiB", SG("'client_output_limit': 1099511627777"), NULL,
     SG_ECONFIG, "1099511627777 is out of range"},
    {"pubsub_output_limit too big for 64 bits", SG("'pubsub_output_limit': 99999999999999999999"),
     NULL, SG_ECONFIG, "expected a number of bytes that fits in 64 bits"},
    {"shutdown_timeout above an hour", NULL, "SLOTGATE_SHUTDOWNTIMEOUT=3601", SG_ECONFIG,
     "3601 is out of range (expected 0 to 3600)"},
    {"shutdown_timeout with a unit", NULL, "SLOTGATE_SHUTDOWNTIMEOUT=10s", SG_EENV,
     "expected a number of seconds"},
    /* ---- bad: metrics, logging, user ----------------------------------------------------- */
    {"metrics without a port", SG("'metrics': 'localhost'"), NULL, SG_ECONFIG,
     ":1:53: slotgate.metrics: \"localhost\" has no port (expected HOST:PORT)"},
    {"metrics on a Unix socket", NULL, "SLOTGATE_METRICS=unix:/run/m.sock", SG_ECONFIG,
     "expected HOST:PORT (HTTP over TCP"},
    {"metrics on a listen address", SG("'listen': ['127.0.0.1:9000'], 'metrics': '127.0.0.1:9000'"),
     NULL, SG_ECONFIG, "slotgate.metrics: \"127.0.0.1:9000\" is also a listen address"},
    {"metrics an array", SG("'metrics': ['a:1']"), NULL, SG_ECONFIG,
     "expected a \"HOST:PORT\" string"},
    {"log_level trace", SG("'log_level': 'trace'"), NULL, SG_ECONFIG,
     ":1:55: slotgate.log_level: expected debug, info, warn or error, found string \"trace\""},
    {"log_level upper case", NULL, "SLOTGATE_LOGLEVEL=INFO", SG_EENV,
     "SLOTGATE_LOGLEVEL=\"INFO\": expected debug, info, warn or error"},
    {"SLOTGATE_SYSLOG=yes", NULL, "SLOTGATE_SYSLOG=yes", SG_EENV,
     "SLOTGATE_SYSLOG=\"yes\": expected a boolean"},
    {"SLOTGATE_SYSLOG empty", NULL, "SLOTGATE_SYSLOG=", SG_EENV, "SLOTGATE_SYSLOG=\"\""},
    {"syslog as a string", SG("'syslog': 'true'"), NULL, SG_ECONFIG,
     "slotgate.syslog: expected true or false, found string \"true\""},
    {"user unknown", SG("'user': 'no-such-user-here'"), NULL, SG_ECONFIG,
     ":1:50: slotgate.user: no user \"no-such-user-here\" on this system"},
    {"user a number", SG("'user': 65534"), NULL, SG_ECONFIG,
     "slotgate.user: expected a string, found number 65534"},
    /* ---- bad: the file ---------------------------------------------------------------------- */
    {"slotgate an array", "{'slotgate': ['listen']}", NULL, SG_ECONFIG,
     ":1:14: slotgate: expected an object of slotgated`s settings, found array"},
    {"malformed JSON", "{'slotgate': {'threads': 2,}}", NULL, SG_EJSON,
     ":1:28: expected a key in double quotes"},
    {"top-level array", "[]", NULL, SG_EJSON, ":1:1: expected a JSON object"},
    {"a bad file value even when the env has another", SG("'threads': 'x'"),
     "SLOTGATE_THREADS=2", SG_ECONFIG, "slotgate.threads: expected an integer"},
};

/* ---- running a case ------------------------------------------------------------- */

static char tmpdir[256], pol1[300], pol2[300], dirpath[300], nonepath[300];

/* ' → ", ` → ', %POL1/%POL2/%DIR/%NONE → paths. Returns a malloc'd string. */
static char *render(const char *s) {
    static const struct {
        const char *token;
        const char *path;
    } subst[] = {{"%POL1", pol1}, {"%POL2", pol2}, {"%DIR", dirpath}, {"%NONE", nonepath}};
    size_t cap = strlen(s) * 2 + 4 * 300 + 1, o = 0, i;
    char *out = malloc(cap);
    while (*s) {
        for (i = 0; i < sizeof subst / sizeof *subst; i++)
            if (strncmp(s, subst[i].token, strlen(subst[i].token)) == 0) break;
        if (i < sizeof subst / sizeof *subst) {
            o += (size_t)snprintf(out + o, cap - o, "%s", subst[i].path);
            s += strlen(subst[i].token);
            continue;
        }
        out[o++] = *s == '\'' ? '"' : *s == '`' ? '\'' : *s;
        s++;
    }
    out[o] = '\0';
    return out;
}

/* The case's environment, rendered; *storage holds its text (free it). */
static const char **make_env(const char *spec, char **storage) {
    *storage = spec ? render(spec) : NULL;
    return test_env_lines(*storage);
}

static int has_warning(const sg_daemon_settings *s, const char *text) {
    int i;
    for (i = 0; i < sg_daemon_settings_warning_count(s); i++)
        if (strstr(sg_daemon_settings_warning(s, i), text)) return 1;
    return 0;
}

/* "HOST PORT" or "unix PATH" against one parsed address. */
static void check_addr_is(const ds_case *c, const sg_listen_addr *a, const char *want) {
    char got[400];
    if (a->path) snprintf(got, sizeof got, "unix %s", a->path);
    else snprintf(got, sizeof got, "%s %d", a->host ? a->host : "(null)", a->port);
    test_checks++;
    if (strcmp(got, want) != 0)
        TEST_FAIL_("%s: address \"%s\" parsed as \"%s\", expected \"%s\"", c->name, a->text, got,
                   want);
}

static void check_expectation(const ds_case *c, sg_daemon_settings *s, char *tok) {
    if (strcmp(tok, "W0") == 0) {
        test_checks++;
        if (sg_daemon_settings_warning_count(s) != 0)
            TEST_FAIL_("%s: expected no warning, got \"%s\"", c->name,
                       sg_daemon_settings_warning(s, 0));
    } else if (strncmp(tok, "W:", 2) == 0) {
        test_checks++;
        if (!has_warning(s, tok + 2))
            TEST_FAIL_("%s: no warning contains \"%s\" (%d warnings%s%s)", c->name, tok + 2,
                       sg_daemon_settings_warning_count(s),
                       sg_daemon_settings_warning_count(s) ? ", first: " : "",
                       sg_daemon_settings_warning_count(s) ? sg_daemon_settings_warning(s, 0) : "");
    } else if (tok[0] == '#') {
        char *eq = strchr(tok, '=');
        size_t n = (size_t)-1;
        *eq = '\0';
        if (strcmp(tok + 1, "listen") == 0) n = s->nlisten;
        else if (strcmp(tok + 1, "policy") == 0) n = s->npolicy;
        else if (strcmp(tok + 1, "users") == 0) n = s->nusers;
        CHECK_INT(n, atoi(eq + 1));
    } else if (strncmp(tok, "L:", 2) == 0) {
        size_t i = (size_t)atoi(tok + 2);
        char *want = render(strchr(tok, '=') + 1);
        test_checks++;
        if (i >= s->nlisten) TEST_FAIL_("%s: no listen[%zu]", c->name, i);
        else check_addr_is(c, &s->listen[i], want);
        free(want);
    } else if (strncmp(tok, "T:", 2) == 0) {
        size_t i = (size_t)atoi(tok + 2);
        test_checks++;
        if (i >= s->nlisten) TEST_FAIL_("%s: no listen[%zu]", c->name, i);
        else CHECK_INT(s->listen[i].tls, atoi(strchr(tok, '=') + 1));
    } else if (strncmp(tok, "M=", 2) == 0) {
        if (strcmp(tok + 2, "off") == 0) CHECK(s->metrics == NULL);
        else if (s->metrics == NULL) TEST_FAIL_("%s: metrics is off", c->name);
        else check_addr_is(c, s->metrics, tok + 2);
    } else if (strncmp(tok, "P:", 2) == 0) {
        size_t i = (size_t)atoi(tok + 2);
        char *want = render(strchr(tok, '=') + 1), got[400];
        test_checks++;
        if (i >= s->nusers) {
            TEST_FAIL_("%s: no users[%zu]", c->name, i);
        } else {
            snprintf(got, sizeof got, "%s %s", s->users[i].name,
                     s->users[i].policy ? s->users[i].policy : "-");
            if (strcmp(got, want) != 0)
                TEST_FAIL_("%s: users[%zu] is \"%s\", expected \"%s\"", c->name, i, got, want);
        }
        free(want);
    } else if (strncmp(tok, "UID=", 4) == 0) {
        CHECK_INT(s->uid, atoi(tok + 4));
    } else {
        int unmasked = strncmp(tok, "U:", 2) == 0;
        char *key = tok + (unmasked ? 2 : 0);
        char *eq = strchr(key, '='), *at = strchr(eq ? eq : key, '@');
        const char *value = NULL, *source = NULL;
        if (at) *at = '\0';
        if (eq) *eq = '\0';
        test_checks++;
        if (sg_daemon_settings_get(s, key, unmasked, &value, &source) != SG_OK) {
            TEST_FAIL_("%s: get %s failed: %s", c->name, key, sg_errmsg(s));
            return;
        }
        if (eq) {
            char *want = render(eq + 1);
            test_checks++;
            if (strcmp(value, want) != 0)
                TEST_FAIL_("%s: %s is \"%s\", expected \"%s\"", c->name, key, value, want);
            free(want);
        }
        if (at) {
            test_checks++;
            if (strstr(source, at + 1) == NULL)
                TEST_FAIL_("%s: %s comes from \"%s\", expected \"%s\"", c->name, key, source,
                           at + 1);
        }
    }
}

static void run_case(const ds_case *c) {
    sg_daemon_settings *s = sg_daemon_settings_new();
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
    rc = sg_daemon_settings_load(s, c->json ? path : NULL, envp);
    test_checks++;
    if (rc != c->rc) {
        TEST_FAIL_("%s: code %s, expected %s; message: %s", c->name, sg_errname(rc),
                   sg_errname(c->rc), sg_errmsg(s));
    } else if (rc != SG_OK) {
        char *parts = render(c->expect), *part, *save = NULL;
        for (part = strtok_r(parts, "|", &save); part; part = strtok_r(NULL, "|", &save)) {
            test_checks++;
            if (strstr(sg_errmsg(s), part) == NULL)
                TEST_FAIL_("%s: message \"%s\" lacks \"%s\"", c->name, sg_errmsg(s), part);
        }
        /* a file's errors name the file; a variable's name the variable */
        if (c->json && strstr(c->expect, "SLOTGATE_") == NULL)
            CHECK_CONTAINS(sg_errmsg(s), path);
        if (strstr(c->expect, "SLOTGATE_")) CHECK(strstr(sg_errmsg(s), "SLOTGATE_") != NULL);
        /* nothing half-read is left */
        CHECK_INT(s->nlisten, 0);
        CHECK(sg_daemon_settings_dump(s) == NULL);
        free(parts);
    } else {
        char *toks = strdup(c->expect), *tok, *save = NULL;
        for (tok = strtok_r(toks, ";", &save); tok; tok = strtok_r(NULL, ";", &save))
            check_expectation(c, s, tok);
        free(toks);
        CHECK(sg_daemon_settings_dump(s) != NULL);
    }
    free(envbuf);
    sg_daemon_settings_free(s);
    test_current = NULL;
}

/* ---- on their own -------------------------------------------------------------------- */

/* The dump names every setting with its source and masks every secret. */
static void test_dump(void) {
    sg_daemon_settings *s = sg_daemon_settings_new();
    const char *env[] = {"SLOTGATE_REQUIREPASS=hunter2", "SLOTGATE_THREADS=3",
                         "SLOTGATE_TLSKEYFILEPASS=opensesame", NULL};
    const char *dump, *v = NULL, *src = NULL;
    char path[300];
    FILE *f;
    snprintf(path, sizeof path, "%s/dump.conf", tmpdir);
    f = fopen(path, "w");
    fputs("{\"storage\": {},\n \"slotgate\": {\"listen\": [\"127.0.0.1:7000\"],\n"
          "  \"users\": {\"alice\": {\"password\": \"wonderland\"}}, \"extra\": 1}}",
          f);
    fclose(f);
    CHECK_INT(sg_daemon_settings_load(s, path, env), SG_OK);
    dump = sg_daemon_settings_dump(s);
    CHECK_CONTAINS(dump, "[slotgated]\n");
    CHECK_CONTAINS(dump, "the \"slotgate\" object of ");
    CHECK_CONTAINS(dump, "\nlisten = 127.0.0.1:7000    # file ");
    CHECK_CONTAINS(dump, ":2:25\n");
    CHECK_CONTAINS(dump, "\nthreads = 3    # env SLOTGATE_THREADS\n");
    CHECK_CONTAINS(dump, "\nrequirepass = ********    # env SLOTGATE_REQUIREPASS\n");
    CHECK_CONTAINS(dump, "\nusers = alice:********    # file ");
    CHECK_CONTAINS(dump, "\nmax_request_bytes = 536870912    # default\n");
    CHECK_CONTAINS(dump, "\nshutdown_timeout = 10    # default\n");
    CHECK_CONTAINS(dump, "# warnings\n# - ");
    CHECK_CONTAINS(dump, "unknown key \"extra\" ignored");
    CHECK(strstr(dump, "hunter2") == NULL);
    CHECK(strstr(dump, "wonderland") == NULL);
    CHECK(strstr(dump, "opensesame") == NULL);
    CHECK_CONTAINS(dump, "\ntls_key_file_pass = ********    # env SLOTGATE_TLSKEYFILEPASS\n");
    CHECK(sg_daemon_settings_dump(s) == dump); /* kept */
    /* every setting of the table is in the dump, once */
#define DUMPED_(id, key, kind, envname, def, min, max)                                        \
    CHECK_CONTAINS(dump, "\n" #key " = ");
    SG_DAEMON_SETTINGS(DUMPED_)
#undef DUMPED_
    CHECK_INT(sg_daemon_settings_get(s, "no_such", 0, &v, &src), SG_EINVAL);
    CHECK_CONTAINS(sg_errmsg(s), "no daemon setting \"no_such\"");
    CHECK_INT(sg_daemon_settings_get(s, "requirepass", 1, &v, &src), SG_OK);
    CHECK_STR(v, "hunter2");
    CHECK_STR(s->requirepass, "hunter2");
    CHECK_STR(s->users[0].password, "wonderland");
    /* a second load replaces everything */
    CHECK_INT(sg_daemon_settings_load(s, NULL, NULL), SG_OK);
    CHECK_INT(sg_daemon_settings_warning_count(s), 0);
    CHECK(sg_daemon_settings_warning(s, 0) == NULL);
    CHECK_CONTAINS(sg_daemon_settings_dump(s), "from the environment only");
    sg_daemon_settings_free(s);
    sg_daemon_settings_free(NULL);
}

/* A secret never appears in a message, however it is wrong. */
static void test_secrets_not_in_messages(void) {
    static const char *const envs[][2] = {
        {"SLOTGATE_USERS=alice:s3cr3t-one,bob", NULL},
        {"SLOTGATE_USERS=alice:s3cr3t-one,", NULL},
        {"SLOTGATE_USERS=al ice:s3cr3t-one", NULL},
        {"SLOTGATE_USERS=default:s3cr3t-one", "SLOTGATE_REQUIREPASS=s3cr3t-two"},
    };
    size_t i;
    for (i = 0; i < sizeof envs / sizeof *envs; i++) {
        sg_daemon_settings *s = sg_daemon_settings_new();
        const char *env[3] = {envs[i][0], envs[i][1], NULL};
        CHECK(sg_daemon_settings_load(s, NULL, env) != SG_OK);
        CHECK_CONTAINS(sg_errmsg(s), "SLOTGATE_USERS (value not shown)");
        CHECK(strstr(sg_errmsg(s), "s3cr3t") == NULL);
        sg_daemon_settings_free(s);
    }
    {
        /* nor the file's: a user's password is not quoted back */
        sg_daemon_settings *s = sg_daemon_settings_new();
        char path[300];
        FILE *f;
        snprintf(path, sizeof path, "%s/secret.conf", tmpdir);
        f = fopen(path, "w");
        fputs("{\"slotgate\": {\"users\": \"alice:s3cr3t\"}}", f);
        fclose(f);
        CHECK_INT(sg_daemon_settings_load(s, path, NULL), SG_ECONFIG);
        CHECK(strstr(sg_errmsg(s), "s3cr3t") == NULL);
        CHECK_CONTAINS(sg_errmsg(s), "found a string");
        sg_daemon_settings_free(s);
    }
}

/* threads defaults to the cores online, and says so. */
static void test_threads_default(void) {
    sg_daemon_settings *s = sg_daemon_settings_new();
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    const char *v, *src;
    char want[64];
    CHECK_INT(sg_daemon_settings_load(s, NULL, NULL), SG_OK);
    if (cores > 256) cores = 256;
    CHECK_INT(s->threads, cores);
    CHECK_INT(sg_daemon_settings_get(s, "threads", 0, &v, &src), SG_OK);
    snprintf(want, sizeof want, "%ld", cores);
    CHECK_STR(v, want);
    CHECK_CONTAINS(src, "cores online");
    CHECK_INT(s->log_level, SG_LOG_INFO);
    CHECK_INT(s->unix_mode, 0660);
    CHECK_STR(s->requirepass, "");
    CHECK_STR(s->user, "");
    sg_daemon_settings_free(s);
}

static void test_missing_file(void) {
    sg_daemon_settings *s = sg_daemon_settings_new();
    CHECK_INT(sg_daemon_settings_load(s, "/nonexistent/tyk.conf", NULL), SG_EIO);
    CHECK_CONTAINS(sg_errmsg(s), "/nonexistent/tyk.conf: cannot open: No such file");
    CHECK_INT(sg_errcode(s), SG_EIO);
    CHECK(sg_daemon_settings_dump(s) == NULL);
    CHECK_INT(sg_daemon_settings_load(NULL, NULL, NULL), SG_EINVAL);
    sg_daemon_settings_free(s);
}

/* A policy the process cannot read (only meaningful when not root). */
static void test_unreadable_policy(void) {
    sg_daemon_settings *s;
    char path[300], env[400];
    const char *envp[2] = {env, NULL};
    FILE *f;
    if (geteuid() == 0) {
        printf("unreadable policy: skipped (root reads every file)\n");
        return;
    }
    snprintf(path, sizeof path, "%s/secret.lua", tmpdir);
    f = fopen(path, "w");
    fputs("return {}\n", f);
    fclose(f);
    chmod(path, 0);
    snprintf(env, sizeof env, "SLOTGATE_POLICY=%s", path);
    s = sg_daemon_settings_new();
    CHECK_INT(sg_daemon_settings_load(s, NULL, envp), SG_ECONFIG);
    CHECK_CONTAINS(sg_errmsg(s), "Permission denied");
    sg_daemon_settings_free(s);
}

/* Every allocation along a full load can fail: the load reports SG_ENOMEM
 * and nothing leaks (LeakSanitizer checks). */
static void test_out_of_memory(void) {
    char path[300], polenv[700];
    const char *env[] = {"SLOTGATE_THREADS=010", "SLOTGATE_USERS=a:1,b:2", polenv,
                         "SLOTGATE_METRICS=127.0.0.1:9121", NULL};
    unsigned long total, n;
    sg_daemon_settings *s;
    FILE *f;
    snprintf(polenv, sizeof polenv, "SLOTGATE_POLICY=%s,%s", pol1, pol2);
    snprintf(path, sizeof path, "%s/oom.conf", tmpdir);
    f = fopen(path, "w");
    fprintf(f,
            "{\"slotgate\": {\"listen\": [\"127.0.0.1:1\", \"[::1]:2\", \"unix:/x\", "
            "\"tls:127.0.0.1:3\"], "
            "\"users\": {\"c\": {\"password\": \"p\", \"policy\": \"%s\", \"x\": 1}}, "
            "\"requirepass\": \"r\", \"unknown\": 1, \"unix_mode\": \"0600\", "
            "\"tls_cert_file\": \"%s\", \"tls_key_file\": \"%s\", \"tls_ca_file\": \"%s\", "
            "\"tls_protocols\": \"TLSv1.3\", \"tls_key_file_pass\": \"k\"}}",
            pol1, pol1, pol2, pol1);
    fclose(f);
    sg_alloc_fail_at(0);
    s = sg_daemon_settings_new();
    CHECK_INT(sg_daemon_settings_load(s, path, env), SG_OK);
    CHECK(sg_daemon_settings_dump(s) != NULL);
    sg_daemon_settings_free(s);
    total = sg_alloc_fail_at(0);
    CHECK(total > 40);
    for (n = 1; n <= total; n++) {
        int rc;
        sg_alloc_fail_at(n);
        s = sg_daemon_settings_new();
        if (s == NULL) continue; /* the first allocation failed */
        rc = sg_daemon_settings_load(s, path, env);
        if (rc == SG_OK) {
            if (sg_daemon_settings_dump(s) == NULL) CHECK_INT(sg_errcode(s), SG_ENOMEM);
        } else {
            test_checks++;
            if (rc != SG_ENOMEM)
                TEST_FAIL_("allocation %lu failing gave %s: %s", n, sg_errname(rc), sg_errmsg(s));
        }
        sg_daemon_settings_free(s);
    }
    sg_alloc_fail_at(0);
}

int main(void) {
    size_t i, bad = 0;
    FILE *f;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sg-ut-dsettings-XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(pol1, sizeof pol1, "%s/one.lua", tmpdir);
    snprintf(pol2, sizeof pol2, "%s/two.lua", tmpdir);
    snprintf(dirpath, sizeof dirpath, "%s/scripts", tmpdir);
    snprintf(nonepath, sizeof nonepath, "%s/missing.lua", tmpdir);
    f = fopen(pol1, "w");
    fputs("return {name = \"one\"}\n", f);
    fclose(f);
    f = fopen(pol2, "w");
    fputs("return {name = \"two\"}\n", f);
    fclose(f);
    mkdir(dirpath, 0755);

    for (i = 0; i < sizeof cases / sizeof *cases; i++) {
        run_case(&cases[i]);
        bad += cases[i].rc != SG_OK;
    }
    printf("daemon settings cases: %zu (%zu bad input)\n", sizeof cases / sizeof *cases, bad);
    RUN(test_dump);
    RUN(test_secrets_not_in_messages);
    RUN(test_threads_default);
    RUN(test_missing_file);
    RUN(test_unreadable_policy);
    RUN(test_out_of_memory);
    {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    return test_report();
}
