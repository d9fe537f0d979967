#!/usr/bin/env python3
"""gen_commands.py — writes core/src/commands_table.h, libslotgate's Redis
command table, and core/src/commands_index.h, its entries' indexes, from the COMMAND output of a running redis-server (7.0 or
later: the reply must carry tips, key specs and subcommands).

    python3 tools/gen_commands.py [HOST:PORT | /path/to/unix.sock]
                                  [-o FILE] [--check] [--auth PASSWORD]

Talks RESP2 over a plain socket (Python standard library only). The output is
deterministic: entries sorted by name, no dates, so regenerating from the same
server version gives the same bytes. --check compares instead of writing and
exits 1 when the checked-in file differs. The build never runs this script;
the generated file is checked in (see tools/README.md).

The flag, key-spec flag and tip names are read from the *_MAP lists in
core/src/commands.h, so the C enums and the generator cannot disagree: a name
the server reports and commands.h lacks stops the generator with a message
saying which list to extend.
"""

import argparse
import os
import re
import socket
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = os.path.join(ROOT, "core", "src", "commands.h")
OUTPUT = os.path.join(ROOT, "core", "src", "commands_table.h")
# The entries' indexes, apart: a host's own per-command tables (the daemon's
# dispatch) are keyed by them without compiling the table's data in.
INDEX_OUTPUT = os.path.join(ROOT, "core", "src", "commands_index.h")


class GenError(Exception):
    pass


# ---- RESP2 client ------------------------------------------------------------


class RespError(Exception):
    pass


class Redis:
    def __init__(self, addr, timeout=10.0):
        if addr.startswith("/"):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(addr)
        else:
            host, _, port = addr.rpartition(":")
            if not host or not port.isdigit():
                raise GenError("bad address %r: expected HOST:PORT or a "
                               "unix socket path" % addr)
            self.sock = socket.create_connection((host, int(port)), timeout)
        self.rfile = self.sock.makefile("rb")

    def call(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, str):
                a = a.encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        reply = self._read()
        if isinstance(reply, RespError):
            raise reply
        return reply

    def _read(self):
        line = self.rfile.readline()
        if not line.endswith(b"\r\n"):
            raise GenError("connection closed or bad reply: %r" % line)
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RespError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.rfile.read(n + 2)[:-2]
            return data.decode("utf-8", errors="surrogateescape")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise GenError("unexpected RESP type byte %r" % kind)


# ---- The name lists in commands.h -------------------------------------------


def read_maps(path):
    """{'SG_CMD_FLAG_MAP': {'write': 'SG_CMD_WRITE', ...}, ...}"""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    prefixes = {
        "SG_CMD_FLAG_MAP": "SG_CMD_",
        "SG_KS_FLAG_MAP": "SG_KS_",
        "SG_REQ_POLICY_MAP": "SG_REQ_",
        "SG_RESP_POLICY_MAP": "SG_RESP_",
        "SG_TIP_MAP": "SG_TIP_",
    }
    maps = {}
    for macro, prefix in prefixes.items():
        m = re.search(r"#define %s\(XX\)((?:.*\\\n)*.*\n)" % macro, text)
        if not m:
            raise GenError("%s: no %s list" % (path, macro))
        entries = re.findall(r'XX\((\w+),\s*"([^"]+)"', m.group(1))
        maps[macro] = {name: prefix + sym for sym, name in entries}
    return maps


def symbols(maps, macro, names, what, cmd):
    out = []
    for n in names:
        if n not in maps[macro]:
            raise GenError("%s: unknown %s %r: add it to %s in "
                           "core/src/commands.h" % (cmd, what, n, macro))
        out.append(maps[macro][n])
    return out


# ---- COMMAND reply → entries --------------------------------------------------


def pairs(lst):
    return dict(zip(lst[0::2], lst[1::2]))


def parse_spec(raw, cmd, maps):
    d = pairs(raw)
    spec = {"flags": symbols(maps, "SG_KS_FLAG_MAP", d["flags"],
                             "key-spec flag", cmd)}
    bs_type, bs = d["begin_search"][1], pairs(d["begin_search"][3])
    if bs_type == "index":
        spec["begin"] = ("index", bs["index"])
    elif bs_type == "keyword":
        spec["begin"] = ("keyword", bs["keyword"], bs["startfrom"])
    elif bs_type == "unknown":
        spec["begin"] = ("unknown",)
    else:
        raise GenError("%s: unknown begin_search type %r" % (cmd, bs_type))
    fk_type, fk = d["find_keys"][1], pairs(d["find_keys"][3])
    if fk_type == "range":
        spec["find"] = ("range", fk["lastkey"], fk["keystep"], fk["limit"])
    elif fk_type == "keynum":
        spec["find"] = ("keynum", fk["keynumidx"], fk["firstkey"],
                        fk["keystep"])
    elif fk_type == "unknown":
        spec["find"] = ("unknown",)
    else:
        raise GenError("%s: unknown find_keys type %r" % (cmd, fk_type))
    return spec


def parse_tips(tips, cmd, maps):
    req, resp, bits = "SG_REQ_DEFAULT", "SG_RESP_DEFAULT", []
    for t in tips:
        if t.startswith("request_policy:"):
            req = symbols(maps, "SG_REQ_POLICY_MAP", [t.split(":", 1)[1]],
                          "request policy", cmd)[0]
        elif t.startswith("response_policy:"):
            resp = symbols(maps, "SG_RESP_POLICY_MAP", [t.split(":", 1)[1]],
                           "response policy", cmd)[0]
        else:
            bits += symbols(maps, "SG_TIP_MAP", [t], "tip", cmd)
    return req, resp, bits


def flatten(reply, maps, parent=None):
    out = []
    for e in reply:
        if not isinstance(e, list) or len(e) < 10:
            raise GenError("COMMAND reply has no tips/key specs/subcommands: "
                           "the server must be Redis 7.0 or later")
        name, arity, flags, first, last, step, _acl, tips, specs, subs = e[:10]
        name = name.lower()
        if not re.fullmatch(r"[a-z0-9_\-]+(\|[a-z0-9_\-]+)?", name):
            raise GenError("command name %r is not of the expected form" %
                           name)
        if (parent is None) != ("|" not in name):
            raise GenError("%s: subcommand nesting not as expected" % name)
        req, resp, tipbits = parse_tips(tips, name, maps)
        out.append({
            "name": name,
            "arity": arity,
            "flags": symbols(maps, "SG_CMD_FLAG_MAP", flags, "flag", name),
            "legacy": (first, last, step),
            "tips": tipbits,
            "req": req,
            "resp": resp,
            "specs": [parse_spec(s, name, maps) for s in specs],
            "parent": parent,
        })
        out += flatten(subs or [], maps, name)
    return out


# ---- C output ----------------------------------------------------------------


def index_symbol(name):
    return "SG_CI_" + re.sub(r"[|\-]", "_", name).upper()


def c_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def wrap(fields, opener, indent, closer, width=79):
    """opener + 'a, b, c' + closer, broken into lines no wider than width.
    A field may be a list of tokens ("x = A", "| B") to break between."""
    pieces = []
    for i, f in enumerate(fields):
        toks = list(f) if isinstance(f, list) else [f]
        toks[-1] += closer if i == len(fields) - 1 else ","
        pieces += toks
    if len(opener) + len(pieces[0]) > width:
        lines, cur = [opener.rstrip()], indent + pieces[0]
    else:
        lines, cur = [], opener + pieces[0]
    for p in pieces[1:]:
        if len(cur) + 1 + len(p) > width:
            lines.append(cur)
            cur = indent + p
        else:
            cur += " " + p
    lines.append(cur)
    return "\n".join(lines) + "\n"


def flags_field(label, syms):
    if not syms:
        return label + " = 0"
    return [label + " = " + syms[0]] + ["| " + s for s in syms[1:]]


def spec_fields(spec):
    f = [flags_field(".flags", spec["flags"])]
    b = spec["begin"]
    if b[0] == "index":
        f += [".begin = SG_BS_INDEX", ".index = %d" % b[1]]
    elif b[0] == "keyword":
        f += [".begin = SG_BS_KEYWORD", ".keyword = " + c_str(b[1]),
              ".startfrom = %d" % b[2]]
    else:
        f += [".begin = SG_BS_UNKNOWN"]
    k = spec["find"]
    if k[0] == "range":
        f += [".find = SG_FK_RANGE", ".range = {%d, %d, %d}" % k[1:]]
    elif k[0] == "keynum":
        f += [".find = SG_FK_KEYNUM", ".keynum = {%d, %d, %d}" % k[1:]]
    else:
        f += [".find = SG_FK_UNKNOWN"]
    return f


def generate(entries, version, addr_note):
    entries = sorted(entries, key=lambda e: e["name"])
    index = {e["name"]: i for i, e in enumerate(entries)}
    syms = [index_symbol(e["name"]) for e in entries]
    if len(set(syms)) != len(syms):
        raise GenError("two commands map to the same SG_CI_ symbol")
    # Subcommands of one container are contiguous once sorted (they share
    # the "name|" prefix); record where each run starts.
    subs = {}
    for i, e in enumerate(entries):
        p = e["parent"]
        if p is not None:
            first, n = subs.get(p, (i, 0))
            if first + n != i:
                raise GenError("subcommands of %s are not contiguous" % p)
            subs[p] = (first, n + 1)

    ncmd = sum(1 for e in entries if e["parent"] is None)
    nsub = len(entries) - ncmd
    nspec = sum(len(e["specs"]) for e in entries)
    o = []
    o.append("""/*
 * commands_table.h — GENERATED by tools/gen_commands.py; do not edit.
 *
 * The command table of redis-server %s (its COMMAND output): %d commands,
 * %d subcommands, %d key specs. Regenerate against a running server of the
 * version to support, and commit the result:
 *
 *     python3 tools/gen_commands.py 127.0.0.1:6379
 *
 * (see tools/README.md). Included by commands.c only; the types are in
 * commands.h, the hand-kept routing hints in commands.c, the entries'
 * indexes in commands_index.h.
 */
""" % (version, ncmd, nsub, nspec))
    o.append("#define SG_COMMANDS_REDIS_VERSION %s\n" % c_str(version))
    o.append('#include "commands_index.h"\n')

    o.append("\n/* The entries point at each other (parent, subcommands). */\n")
    o.append("static const sg_command command_table[SG_COMMAND_COUNT];\n\n")

    o.append("static const sg_keyspec keyspec_table[] = {\n")
    spec_at = {}
    n = 0
    for e in entries:
        if not e["specs"]:
            continue
        spec_at[e["name"]] = n
        o.append("    /* %d: %s */\n" % (n, e["name"]))
        for s in e["specs"]:
            o.append(wrap(spec_fields(s), "    {", "     ", "},"))
            n += 1
    o.append("};\n\n")

    o.append("static const sg_command command_table[SG_COMMAND_COUNT] = {\n")
    for i, e in enumerate(entries):
        f = [".name = " + c_str(e["name"]),
             ".namelen = %d" % len(e["name"]),
             ".arity = %d" % e["arity"],
             flags_field(".flags", e["flags"]),
             ".first = %d" % e["legacy"][0],
             ".last = %d" % e["legacy"][1],
             ".step = %d" % e["legacy"][2]]
        if e["tips"]:
            f.append(flags_field(".tips", e["tips"]))
        if e["req"] != "SG_REQ_DEFAULT":
            f.append(".request_policy = " + e["req"])
        if e["resp"] != "SG_RESP_DEFAULT":
            f.append(".response_policy = " + e["resp"])
        if e["specs"]:
            f.append(".specs = &keyspec_table[%d]" % spec_at[e["name"]])
            f.append(".nspecs = %d" % len(e["specs"]))
        if e["parent"] is not None:
            f.append(".parent = &command_table[%s]" %
                     index_symbol(e["parent"]))
        if e["name"] in subs:
            first, count = subs[e["name"]]
            f.append(".subs = &command_table[%s]" % syms[first])
            f.append(".nsubs = %d" % count)
        o.append(wrap(f, "    [%s] = {" % syms[i], "        ", "},"))
    o.append("};\n")
    x = ["""/*
 * commands_index.h — GENERATED by tools/gen_commands.py; do not edit.
 *
 * The place of each entry in the command table of redis-server %s
 * (commands_table.h): sg_command_index(cmd) == SG_CI_GET for GET. Tables kept
 * by hand (commands.c's hints, slotgated's dispatch) are indexed by these, so
 * a command a newer Redis drops stops the build where it is used.
 */
#ifndef SG_COMMANDS_INDEX_H
#define SG_COMMANDS_INDEX_H

#define SG_COMMAND_COUNT %d

""" % (version, len(entries))]
    for i, s in enumerate(syms):
        x.append("#define %s %d\n" % (s, i))
    x.append("\n#endif\n")
    return "".join(o), "".join(x)


def main(argv):
    ap = argparse.ArgumentParser(
        description="Generate core/src/commands_table.h from a live "
        "redis-server's COMMAND output.")
    ap.add_argument("addr", nargs="?", default="127.0.0.1:6379",
                    help="HOST:PORT or unix socket path "
                    "(default 127.0.0.1:6379)")
    ap.add_argument("-o", "--output", default=OUTPUT,
                    help="file to write (default core/src/commands_table.h)")
    ap.add_argument("--check", action="store_true",
                    help="do not write; exit 1 when the file differs")
    ap.add_argument("--auth", default=os.environ.get("REDISCLI_AUTH"),
                    help="password (default $REDISCLI_AUTH)")
    args = ap.parse_args(argv)

    try:
        maps = read_maps(HEADER)
    except (OSError, GenError) as e:
        sys.stderr.write("gen_commands: %s\n" % e)
        return 2
    try:
        r = Redis(args.addr)
        if args.auth:
            r.call("AUTH", args.auth)
        info = r.call("INFO", "server")
        m = re.search(r"^redis_version:(\S+)", info, re.M)
        if not m:
            raise GenError("INFO server has no redis_version")
        version = m.group(1)
        entries = flatten(r.call("COMMAND"), maps)
        text, index_text = generate(entries, version, args.addr)
    except OSError as e:
        sys.stderr.write("gen_commands: %s: %s\n" % (args.addr, e))
        return 2
    except (GenError, RespError) as e:
        sys.stderr.write("gen_commands: %s\n" % e)
        return 2

    index_output = os.path.join(os.path.dirname(args.output),
                                os.path.basename(INDEX_OUTPUT))
    outputs = [(args.output, text), (index_output, index_text)]
    if args.check:
        for path, want in outputs:
            try:
                with open(path, encoding="utf-8") as f:
                    old = f.read()
            except OSError:
                old = None
            if old != want:
                sys.stderr.write("gen_commands: %s differs from what redis %s "
                                 "at %s gives\n" % (path, version, args.addr))
                return 1
        print("gen_commands: %s and %s are up to date (redis %s)" %
              (args.output, index_output, version))
        return 0
    for path, want in outputs:
        with open(path, "w", encoding="utf-8") as f:
            f.write(want)
    print("gen_commands: wrote %s: redis %s, %d entries" %
          (args.output, version, len(entries)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
