-- Run by busted before the specs (.busted: helper). Under the sanitizer
-- build ctest starts busted with LD_PRELOAD=libasan, which luajit needs to
-- load the ASan-built library; the programs the specs start need it not
-- (slotgated links the runtime itself) and some hang with it (pgrep and
-- strace were seen stuck at start). Children get an environment without it;
-- SG_SANITIZED=1 (set by ctest) still says which build this is.
local ffi = require "ffi"
ffi.cdef "int unsetenv(const char *name);"
ffi.C.unsetenv("LD_PRELOAD")
