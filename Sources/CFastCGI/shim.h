// libfcgi's request-level API (FCGX_*), found through pkg-config `fcgi` (Debian: libfcgi-dev).
// Only `FastCGIRequest.swift` and `FastCGIServer.swift` import this module, privately.
#ifndef COUNTER_CFASTCGI_SHIM_H
#define COUNTER_CFASTCGI_SHIM_H
#include <fcgiapp.h>
#endif
