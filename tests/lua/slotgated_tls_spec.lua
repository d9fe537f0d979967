-- slotgated's client-facing TLS: "tls:" listen addresses beside plain ones,
-- sessions over TLS like plain ones (AUTH included), client certificates
-- required or optional, the protocol versions, and start-up errors that name
-- the file and OpenSSL's reason. Certificates are made here with openssl: a
-- CA, a server certificate, a client certificate, and a client certificate
-- from another CA that must be refused.
local helper = require "helper"
local daemon = require "daemon"

local q, slurp, sh, wait_for = helper.shell_quote, helper.slurp, helper.sh, helper.wait_for
local stop, cli = daemon.stop, daemon.cli
local dir = daemon.dir

daemon.ports_from(401)

local function make_certs()
  local script = [[
set -e
cd "$1"
key="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256"
for ca in ca rogue; do
  openssl req -x509 -new $key -days 2 -keyout $ca.key -out $ca.crt -subj "/CN=slotgated test $ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
done
printf '%s\n' "basicConstraints=CA:FALSE" "extendedKeyUsage=serverAuth" \
  "subjectAltName=IP:127.0.0.1,DNS:localhost" >server.ext
printf '%s\n' "basicConstraints=CA:FALSE" "extendedKeyUsage=clientAuth" >client.ext
openssl req -new $key -keyout server.key -out server.csr -subj "/CN=localhost"
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -set_serial 2 -days 2 \
  -extfile server.ext -out server.crt
openssl req -new $key -keyout client.key -out client.csr -subj "/CN=client"
openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -set_serial 3 -days 2 \
  -extfile client.ext -out client.crt
openssl req -new $key -keyout rogue-client.key -out rogue-client.csr -subj "/CN=rogue"
openssl x509 -req -in rogue-client.csr -CA rogue.crt -CAkey rogue.key -set_serial 4 -days 2 \
  -extfile client.ext -out rogue-client.crt
openssl req -new $key -keyout renewed.key -out renewed.csr -subj "/O=renewed/CN=localhost"
openssl x509 -req -in renewed.csr -CA ca.crt -CAkey ca.key -set_serial 5 -days 2 \
  -extfile server.ext -out renewed.crt
openssl pkey -in server.key -aes256 -passout pass:opensesame-k3y -out server-enc.key
echo 'not a certificate' >garbage.pem
]]
  local out = sh("bash " .. q(helper.write(dir .. "/certs.sh", script)) .. " " .. q(dir))
  assert(slurp(dir .. "/server-enc.key"):match("ENCRYPTED"), "openssl failed: " .. out)
end
make_certs()

local function file(name) return dir .. "/" .. name end

-- Starts slotgated with a plain and a TLS address (the server certificate
-- above) and env added.
local function start(env)
  return daemon.start{ env = env, tls = { cert = file("server.crt"), key = file("server.key") } }
end

-- redis-cli over TLS to d's TLS address; cert: a client certificate's name
-- ("client", "rogue-client") or nil; opts as daemon.cli takes them.
local function tls_cli(d, args, cert, opts)
  opts = opts or {}
  opts.tls = { ca = file("ca.crt") }
  if cert then opts.tls.cert, opts.tls.key = file(cert .. ".crt"), file(cert .. ".key") end
  return cli(d, args, opts)
end

describe("slotgated over TLS", function()
  local d

  setup(function() d = start() end)
  teardown(daemon.stop_all)

  it("serves the cluster on a tls: address beside the plain one", function()
    assert.equal("OK\n", tls_cli(d, "SET tls:{k} over-tls"))
    assert.equal("over-tls\n", tls_cli(d, "GET tls:{k}"))
    -- the same data through the plain address: one gateway
    assert.equal("over-tls\n", cli(d, "GET tls:{k}"))
    assert.equal("OK\n", tls_cli(d, "MSET tls:{a} 1 tls:{b} 2"))
    assert.equal("1\n2\n", tls_cli(d, "MGET tls:{a} tls:{b}"))
    assert.equal("3\n", tls_cli(d, "DEL tls:{k} tls:{a} tls:{b}"))
    assert.matches("slotgate_version:", tls_cli(d, "INFO"))
  end)

  it("keeps the order of pipelined commands over TLS", function()
    local buf = {}
    for i = 1, 2000 do
      local k = "tlspipe:" .. i
      buf[#buf + 1] = string.format("*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%d\r\n", #k, k, #tostring(i), i)
    end
    local out = tls_cli(d, "--pipe", nil, { input = table.concat(buf) })
    assert.matches("errors: 0, replies: 2000", out, 1, true)
    assert.equal("1234\n", tls_cli(d, "GET tlspipe:1234"))
  end)

  it("refuses a plain client on the TLS address and says why", function()
    assert.is_nil(sh("redis-cli -p " .. d.tls_port .. " PING"):match("PONG"))
    assert.matches("TLS: .*wrong version number", daemon.wait_log(d, "wrong version number"))
    -- and TLS is not spoken on the plain address
    assert.is_nil(cli(d, "--tls --cacert " .. q(file("ca.crt")) .. " PING"):match("PONG"))
    assert.equal("PONG\n", tls_cli(d, "PING"))
  end)
end)

describe("slotgated's TLS certificate on SIGHUP", function()
  it("serves a renewed certificate to new clients, and keeps the old one when the new fails", function()
    -- the files the settings name, replaced in place as a renewal does
    local function install(name)
      sh("cp " .. q(file(name .. ".crt")) .. " " .. q(file("live.crt")) .. " && cp " ..
         q(file(name .. ".key")) .. " " .. q(file("live.key")))
    end
    install("server")
    local d = daemon.start{ tls = { cert = file("live.crt"), key = file("live.key") } }
    finally(function() stop(d) end)
    local function subject()
      return sh("openssl s_client -connect 127.0.0.1:" .. d.tls_port .. " -CAfile " .. q(file("ca.crt")) ..
                " </dev/null 2>/dev/null | openssl x509 -noout -subject")
    end
    assert.matches("CN = localhost", subject())
    assert.is_nil(subject():match("renewed"))
    install("renewed")
    daemon.signal(d, "HUP")
    assert.is_truthy(wait_for(function() return subject():match("O = renewed") end))
    assert.equal("PONG\n", tls_cli(d, "PING"))
    -- a key that does not load: the running certificate stays, and why is logged
    helper.write(file("live.key"), "not a key\n")
    daemon.signal(d, "HUP")
    assert.matches("nothing changes: .*live%.key", daemon.wait_log(d, "nothing changes"))
    assert.matches("O = renewed", subject())
    assert.equal("PONG\n", tls_cli(d, "PING"))
  end)
end)

describe("slotgated over TLS past max_clients", function()
  it("closes the TLS client without writing plain text into its handshake", function()
    local d = start({ SLOTGATE_MAXCLIENTS = "1" })
    local a
    finally(function() -- (busted keeps one finally per test)
      if a then a:close() end
      stop(d)
    end)
    -- (answered: slotgated may not have seen its start-up probe go yet)
    a = assert(daemon.connect_served(d.port))
    local out = sh("openssl s_client -connect 127.0.0.1:" .. d.tls_port .. " -CAfile " ..
                   q(file("ca.crt")) .. " </dev/null 2>&1")
    -- the plain "-ERR max number of clients" read as a TLS record
    assert.is_nil(out:match("wrong version number"))
    -- closed without a word: an end of file, or a reset when the close came
    -- after the ClientHello had arrived unread (the kernel then sends RST)
    assert.is_truthy(out:match("unexpected eof") or out:match("errno=104"), out)
    assert.matches("handshake has read 0 bytes", out)
    a:send({ "PING" })
    assert.equal("PONG", a:read().v)
  end)
end)

describe("slotgated over TLS with a password", function()
  it("asks for AUTH over TLS as over plain connections", function()
    local d = start({ SLOTGATE_REQUIREPASS = "tls-s3cret" })
    finally(function() stop(d) end)
    assert.matches("NOAUTH", tls_cli(d, "GET x"))
    assert.matches("WRONGPASS", tls_cli(d, "--no-auth-warning -a wrong PING"))
    assert.equal("PONG\n", tls_cli(d, "--no-auth-warning -a tls-s3cret PING"))
    assert.equal("OK\n", tls_cli(d, "--no-auth-warning -a tls-s3cret SET tls:auth v"))
    assert.equal("1\n", tls_cli(d, "--no-auth-warning -a tls-s3cret DEL tls:auth"))
    assert.is_nil(slurp(d.log):match("tls%-s3cret"))
  end)
end)

describe("slotgated verifying client certificates", function()
  it("requires one signed by tls_ca_file when it is set", function()
    local d = start({ SLOTGATE_TLSCAFILE = file("ca.crt") })
    finally(function() stop(d) end)
    assert.equal("PONG\n", tls_cli(d, "PING", "client"))
    local out = tls_cli(d, "PING")
    assert.is_nil(out:match("PONG"))
    assert.matches("peer did not return a certificate",
                   daemon.wait_log(d, "peer did not return a certificate"))
    assert.is_nil(tls_cli(d, "PING", "rogue-client"):match("PONG"))
    assert.matches("certificate verify failed", daemon.wait_log(d, "certificate verify failed"))
    -- a plain address is not affected
    assert.equal("PONG\n", cli(d, "PING"))
  end)

  it("takes clients without one when optional, but never a bad one", function()
    local d = start({ SLOTGATE_TLSCAFILE = file("ca.crt"), SLOTGATE_TLSVERIFYCLIENTS = "optional" })
    finally(function() stop(d) end)
    assert.equal("PONG\n", tls_cli(d, "PING"))
    assert.equal("PONG\n", tls_cli(d, "PING", "client"))
    assert.is_nil(tls_cli(d, "PING", "rogue-client"):match("PONG"))
  end)

  it("takes any client when told no", function()
    local d = start({ SLOTGATE_TLSCAFILE = file("ca.crt"), SLOTGATE_TLSVERIFYCLIENTS = "no" })
    finally(function() stop(d) end)
    assert.equal("PONG\n", tls_cli(d, "PING"))
    assert.equal("PONG\n", tls_cli(d, "PING", "rogue-client"))
  end)
end)

describe("slotgated TLS settings", function()
  it("offers only the versions of tls_protocols", function()
    local d = start({ SLOTGATE_TLSPROTOCOLS = "TLSv1.3" })
    finally(function() stop(d) end)
    local function s_client(version)
      return sh("openssl s_client -connect 127.0.0.1:" .. d.tls_port .. " -CAfile " ..
                q(file("ca.crt")) .. " " .. version .. " </dev/null")
    end
    local v13, v12 = s_client("-tls1_3"), s_client("-tls1_2")
    assert.matches("New, TLSv1%.3, Cipher is TLS_", v13)
    assert.matches("alert protocol version", v12)
    assert.matches("Cipher is %(NONE%)", v12)
    assert.equal("PONG\n", tls_cli(d, "PING"))
  end)

  it("decrypts the key with tls_key_file_pass, which is never shown", function()
    local d = start({ SLOTGATE_TLSKEYFILE = file("server-enc.key"),
                      SLOTGATE_TLSKEYFILEPASS = "opensesame-k3y", SLOTGATE_LOGLEVEL = "debug" })
    finally(function() stop(d) end)
    assert.equal("PONG\n", tls_cli(d, "PING"))
    local code, out, err = helper.run({ helper.slotgated, "--check" }, {
      TYK_GW_STORAGE_ADDRS = "127.0.0.1:1",
      SLOTGATE_LISTEN = "tls:127.0.0.1:1",
      SLOTGATE_TLSCERTFILE = file("server.crt"),
      SLOTGATE_TLSKEYFILE = file("server-enc.key"),
      SLOTGATE_TLSKEYFILEPASS = "opensesame-k3y",
    })
    assert.equal(0, code, err)
    assert.matches("tls_key_file_pass = %*%*%*%*%*%*%*%*    # env SLOTGATE_TLSKEYFILEPASS", out)
    assert.is_nil((out .. err):match("opensesame"))
    assert.is_nil(slurp(d.log):match("opensesame"))
  end)

  -- Start-up (and --check) failures: each names the setting, the file and
  -- OpenSSL's reason.
  local bad = {
    { "a certificate that is not PEM", { SLOTGATE_TLSCERTFILE = "garbage.pem" },
      { "cannot load tls_cert_file", "garbage.pem", "no start line" } },
    { "an encrypted key without its passphrase", { SLOTGATE_TLSKEYFILE = "server-enc.key" },
      { "cannot load tls_key_file", "server-enc.key", "set tls_key_file_pass" } },
    { "a wrong passphrase", { SLOTGATE_TLSKEYFILE = "server-enc.key", SLOTGATE_TLSKEYFILEPASS = "wrong-pass" },
      { "cannot load tls_key_file (with tls_key_file_pass)", "server-enc.key", "error:" } },
    { "a key of another certificate", { SLOTGATE_TLSKEYFILE = "client.key" },
      { "client.key", "error:" } },
    { "a CA file that is not PEM", { SLOTGATE_TLSCAFILE = "garbage.pem" },
      { "tls_ca_file", "garbage.pem", "error:" } },
    { "ciphers OpenSSL does not know", { SLOTGATE_TLSCIPHERS = "NO-SUCH-CIPHER" },
      { "tls_ciphers", "NO-SUCH-CIPHER", "no cipher match" } },
  }
  for _, case in ipairs(bad) do
    it("refuses to start with " .. case[1], function()
      local env = {
        TYK_GW_STORAGE_ADDRS = helper.server_var("SG_TEST_CLUSTER_MASTERS"),
        TYK_GW_STORAGE_ENABLECLUSTER = "true",
        SLOTGATE_LISTEN = "tls:127.0.0.1:" .. helper.port(499),
        SLOTGATE_TLSCERTFILE = file("server.crt"),
        SLOTGATE_TLSKEYFILE = file("server.key"),
      }
      for k, v in pairs(case[2]) do
        env[k] = v:match("^[%w-]+%.%w+$") and file(v) or v
      end
      for _, args in ipairs({ { "--check" }, {} }) do
        local argv = { "timeout", "20", helper.slotgated }
        for _, a in ipairs(args) do argv[#argv + 1] = a end
        local code, _, err = helper.run(argv, env)
        assert.equal(1, code, err)
        for _, word in ipairs(case[3]) do assert.matches(word, err, 1, true) end
        assert.is_nil(err:match("wrong%-pass"))
      end
    end)
  end
end)
