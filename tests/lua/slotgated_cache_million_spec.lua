-- The near cache's memory bound with a million keys (docs/CACHE.md): a
-- slotgated whose policy caches every key read, with an 8 MiB
-- cache_max_bytes, reads 1 000 000 distinct keys, pipelined (GETs written in
-- batches on a raw socket, their replies read as bytes). The keys do not
-- exist: a null answer is cached as any other. The cache must stay within
-- its bound (INFO cache's cache_bytes), evict, keep its counts consistent,
-- still answer the keys read last from memory, and slotgated's RSS must not
-- grow past the bound plus a margin for what is not the cache (the
-- sessions' buffers, the allocator's own). Under AddressSanitizer (its
-- quarantine keeps freed memory on purpose) the RSS is not checked.
local ffi = require "ffi"
local helper = require "helper"
local daemon = require "daemon"
local cache = require "cache_helper"

local slurp, now = helper.slurp, helper.now

daemon.ports_from(636) -- 631..635: the Sentinel cache spec; 636..640 this one

-- BATCH GETs in flight per connection: a session's requests in flight cost
-- memory of their own (about 1 kB each), which the margin below covers.
local KEYS, BATCH, CONNS = 1000000, 2000, 2
local MAX = 8 * 1024 * 1024
-- What RSS may grow by beyond MAX, in kB: the requests in flight (2 x 2000,
-- some 4 MB), the sessions' buffers, and malloc's fragmentation as entries
-- come and go. Measured: 8 MiB of cache and 4-6 MB of the rest. A cache
-- that kept every key would take some 170 MB, one that leaked 8 bytes a key
-- read 8 MB more.
local RSS_MARGIN_KB = 12 * 1024
local asan = os.getenv("SG_SANITIZED") == "1"

local dir = helper.tmpdir()
local policy = helper.write(dir .. "/cache.lua", [[
return { name = "cache", cache = { ["mil:*"] = 300 } }
]])

local cache_info = cache.cache_info

local function rss_kb(pid)
  return tonumber(slurp("/proc/" .. pid .. "/status"):match("VmRSS:%s*(%d+)"))
end

-- GET of keys from..to, as one string of commands.
local function gets(from, to)
  local out = {}
  for i = from, to do
    local k = "mil:" .. i
    out[#out + 1] = "*2\r\n$3\r\nGET\r\n$" .. #k .. "\r\n" .. k .. "\r\n"
  end
  return table.concat(out)
end

-- Exactly n bytes from conn's socket (what its parser holds first), within
-- 30 s.
local buf = ffi.new("char[65536]")
local pfd = ffi.new("struct sg_daemon_pollfd[1]")
local function read_n(conn, n)
  local parts, got = { conn.buf }, #conn.buf
  conn.buf = ""
  local deadline = now() + 30
  while got < n do
    assert(now() < deadline, "only " .. got .. " of " .. n .. " bytes within 30 s")
    pfd[0].fd, pfd[0].events, pfd[0].revents = conn.fd, 1, 0
    if ffi.C.poll(pfd, 1, 1000) > 0 then
      local r = tonumber(ffi.C.recv(conn.fd, buf, math.min(65536, n - got), 0))
      assert(r > 0, "slotgated closed the connection")
      parts[#parts + 1] = ffi.string(buf, r)
      got = got + r
    end
  end
  return table.concat(parts)
end

describe("slotgated's near cache with a million keys read", function()
  teardown(daemon.stop_all)

  it("stays within cache_max_bytes, in INFO and in its RSS", function()
    local d = daemon.start{ env = { SLOTGATE_POLICY = policy, SLOTGATE_THREADS = "1",
                                    SLOTGATE_CACHEMAXBYTES = tostring(MAX) } }
    local c = assert(daemon.connect_served(d.port))
    local conns = {}
    for i = 1, CONNS do conns[i] = assert(daemon.connect_served(d.port)) end
    finally(function()
      c:close()
      for _, conn in ipairs(conns) do conn:close() end
    end)
    local null = "$-1\r\n"
    -- the trackers opened and a first batch read: what RSS is before the run
    for _, conn in ipairs(conns) do
      conn:send_raw(gets(1, 1000))
      assert.equal(null:rep(1000), read_n(conn, 1000 * #null))
    end
    assert.is_truthy(helper.wait_for(function() return cache_info(c).cache_trackers >= 3 end),
                     "the trackers of the three masters not all up: " ..
                     cache_info(c).cache_trackers)
    local rss0, t0 = rss_kb(d.pid), now()
    local per = KEYS / CONNS
    local want = null:rep(BATCH)
    for b = 0, per / BATCH - 1 do
      for i, conn in ipairs(conns) do
        local from = (i - 1) * per + b * BATCH + 1
        conn:send_raw(gets(from, from + BATCH - 1))
      end
      for i, conn in ipairs(conns) do
        local got = read_n(conn, #want)
        if got ~= want then
          local at = 1
          while got:sub(at, at + 4) == null do at = at + 5 end
          error("conn " .. i .. ", batch " .. b .. ": reply " .. (at - 1) / 5 + 1 ..
                " not a null: " .. got:sub(at, at + 120):gsub("\r\n", " "))
        end
      end
    end
    local secs, rss1 = now() - t0, rss_kb(d.pid)
    local info = cache_info(c)
    print(string.format("\n  %d keys read in %.1f s (%.0f/s); cache %d bytes, %d entries, " ..
                        "%d fills, %d evictions; RSS %d kB before, %d kB after (+%d kB)",
                        KEYS, secs, KEYS / secs, info.cache_bytes, info.cache_entries,
                        info.cache_fills, info.cache_evictions, rss0, rss1, rss1 - rss0))
    assert.equal(MAX, info.cache_max_bytes)
    assert.is_true(info.cache_bytes <= MAX, info.cache_bytes .. " bytes")
    assert.is_true(info.cache_evictions > 0, "nothing evicted")
    -- every fill is an entry still there, or one gone for a counted reason
    local gone = info.cache_evictions + info.cache_dropped_invalidated +
                 info.cache_dropped_written + info.cache_dropped_flushed +
                 info.cache_dropped_lost + info.cache_dropped_moved + info.cache_dropped_expired
    assert.equal(info.cache_fills - gone, info.cache_entries)
    -- most of the million filled, and the cache full (an entry is far below 1 kB)
    assert.is_true(info.cache_fills > KEYS * 0.9, info.cache_fills .. " fills")
    assert.is_true(info.cache_entries > MAX / 1024, info.cache_entries .. " entries")
    assert.is_true(info.cache_bytes > MAX / 2, info.cache_bytes .. " bytes: not full")
    -- the keys read last are still in memory: read again, from it
    local hits = info.cache_hits
    for i, conn in ipairs(conns) do
      conn:send_raw(gets(i * per - 999, i * per))
      assert.equal(null:rep(1000), read_n(conn, 1000 * #null))
    end
    assert.equal(hits + CONNS * 1000, cache_info(c).cache_hits)
    if not asan then
      assert.is_true(rss1 - rss0 <= MAX / 1024 + RSS_MARGIN_KB,
                     string.format("RSS grew by %d kB, more than %d kB + %d kB", rss1 - rss0,
                                   MAX / 1024, RSS_MARGIN_KB))
    end
  end)
end)
