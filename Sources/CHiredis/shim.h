// hiredis's synchronous API, found through pkg-config `hiredis` (Debian: libhiredis-dev, 0.14 on
// bookworm). Only `RedisConnection.swift` imports this module, privately.
#ifndef COUNTER_CHIREDIS_SHIM_H
#define COUNTER_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#endif
