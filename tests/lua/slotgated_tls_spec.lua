-- slotgated's client-facing TLS: "tls:" listen addresses beside plain ones,
-- sessions over TLS like plain ones (AUTH included), client certificates
-- required or optional, the protocol versions, and start-up errors that name
-- the file and OpenSSL's reason. Certificates are made here with openssl: a
-- CA, a server certificate, a client certificate, and a client certificate
-- from another CA that must be refused.
local helper = require "helper"

local q = helper.shell_quote

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("*a")
  p:close()
  return out
end

local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. q(dir))

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
openssl pkey -in server.key -aes256 -passout pass:opensesame-k3y -out server-enc.key
echo 'not a certificate' >garbage.pem
]]
  local f = assert(io.open(dir .. "/certs.sh", "w"))
  f:write(script)
  f:close()
  local out = sh("bash " .. q(dir .. "/certs.sh") .. " " .. q(dir))
  assert(slurp(dir .. "/server-enc.key"):match("ENCRYPTED"), "openssl failed: " .. out)
end
make_certs()

local function file(name) return dir .. "/" .. name end

local next_port = helper.port(400)

-- Starts slotgated with a plain and a TLS address (the server certificate
-- above) and env added; ready when the plain address answers.
local function start(env)
  next_port = next_port + 2
  local d = { port = next_port, tls_port = next_port + 1,
              log = dir .. "/sg" .. next_port .. ".log", pidfile = dir .. "/sg" .. next_port .. ".pid" }
  local vars = {
    TYK_GW_STORAGE_ADDRS = helper.server_var("SG_TEST_CLUSTER_MASTERS"),
    TYK_GW_STORAGE_ENABLECLUSTER = "true",
    SLOTGATE_LISTEN = "127.0.0.1:" .. d.port .. ",tls:127.0.0.1:" .. d.tls_port,
    SLOTGATE_TLSCERTFILE = file("server.crt"),
    SLOTGATE_TLSKEYFILE = file("server.key"),
    SLOTGATE_THREADS = "2",
  }
  for k, v in pairs(env or {}) do vars[k] = v end
  local parts = { "env" }
  for k, v in pairs(vars) do parts[#parts + 1] = q(k .. "=" .. v) end
  parts[#parts + 1] = q(helper.slotgated)
  os.execute(table.concat(parts, " ") .. " >" .. q(d.log) .. " 2>&1 & echo $! >" .. q(d.pidfile))
  d.pid = tonumber(slurp(d.pidfile))
  for _ = 1, 200 do
    local out = sh("redis-cli -p " .. d.port .. " PING")
    if out:match("PONG") or out:match("NOAUTH") then return d end
    if os.execute("kill -0 " .. d.pid .. " 2>/dev/null") ~= 0 then break end
    os.execute("sleep 0.05")
  end
  error("slotgated did not start: " .. slurp(d.log))
end

local function stop(d)
  os.execute("kill -TERM " .. d.pid)
  for _ = 1, 300 do
    if os.execute("kill -0 " .. d.pid .. " 2>/dev/null") ~= 0 then return true end
    os.execute("sleep 0.05")
  end
  os.execute("kill -KILL " .. d.pid)
  return false
end

-- redis-cli over TLS to d's TLS address; cert: a client certificate's name
-- ("client", "rogue-client") or nil.
local function tls_cli(d, args, cert)
  local opts = "--tls --cacert " .. q(file("ca.crt"))
  if cert then
    opts = opts .. " --cert " .. q(file(cert .. ".crt")) .. " --key " .. q(file(cert .. ".key"))
  end
  return sh("redis-cli " .. opts .. " -p " .. d.tls_port .. " " .. args)
end

-- Waits until d's log matches pattern; the log.
local function log_matches(d, pattern)
  for _ = 1, 100 do
    if slurp(d.log):match(pattern) then break end
    os.execute("sleep 0.05")
  end
  return slurp(d.log)
end

describe("slotgated over TLS", function()
  local d

  setup(function() d = start() end)
  teardown(function() if d then stop(d) end end)

  it("serves the cluster on a tls: address beside the plain one", function()
    assert.equal("OK\n", tls_cli(d, "SET tls:{k} over-tls"))
    assert.equal("over-tls\n", tls_cli(d, "GET tls:{k}"))
    -- the same data through the plain address: one gateway
    assert.equal("over-tls\n", sh("redis-cli -p " .. d.port .. " GET tls:{k}"))
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
    local f = assert(io.open(dir .. "/pipe.resp", "wb"))
    f:write(table.concat(buf))
    f:close()
    local out = sh("redis-cli --tls --cacert " .. q(file("ca.crt")) .. " -p " .. d.tls_port ..
                   " --pipe < " .. q(dir .. "/pipe.resp"))
    assert.matches("errors: 0, replies: 2000", out, 1, true)
    assert.equal("1234\n", tls_cli(d, "GET tlspipe:1234"))
  end)

  it("refuses a plain client on the TLS address and says why", function()
    assert.is_nil(sh("redis-cli -p " .. d.tls_port .. " PING"):match("PONG"))
    assert.matches("TLS: .*wrong version number", log_matches(d, "wrong version number"))
    -- and TLS is not spoken on the plain address
    assert.is_nil(sh("redis-cli --tls --cacert " .. q(file("ca.crt")) .. " -p " .. d.port ..
                     " PING"):match("PONG"))
    assert.equal("PONG\n", tls_cli(d, "PING"))
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
                   log_matches(d, "peer did not return a certificate"))
    assert.is_nil(tls_cli(d, "PING", "rogue-client"):match("PONG"))
    assert.matches("certificate verify failed", log_matches(d, "certificate verify failed"))
    -- a plain address is not affected
    assert.equal("PONG\n", sh("redis-cli -p " .. d.port .. " PING"))
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
