// Linux's epoll and eventfd, which Swift's Glibc module does not export. Only
// `ConnectionPoller.swift` imports this module, privately.
#ifndef COUNTER_CEPOLL_SHIM_H
#define COUNTER_CEPOLL_SHIM_H
#include <sys/epoll.h>
#include <sys/eventfd.h>
#endif
