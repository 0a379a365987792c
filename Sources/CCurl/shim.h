#ifndef CCURL_SHIM_H
#define CCURL_SHIM_H

#include <curl/curl.h>

// curl_easy_setopt / curl_multi_setopt / curl_easy_getinfo are variadic and cannot be called
// from Swift; these typed wrappers can.

static inline CURLcode ccurl_easy_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode ccurl_easy_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode ccurl_easy_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode ccurl_easy_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}

typedef size_t (*ccurl_write_callback)(char *data, size_t size, size_t count, void *userdata);

static inline CURLcode ccurl_easy_setopt_write_function(CURL *handle, ccurl_write_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, callback);
}

static inline CURLcode ccurl_easy_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode ccurl_easy_getinfo_pointer(CURL *handle, CURLINFO info, void **value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLMcode ccurl_multi_setopt_long(CURLM *handle, CURLMoption option, long value) {
    return curl_multi_setopt(handle, option, value);
}

// libcurl calls this before it looks up a host that is not in its DNS cache. GavelPing pins every
// host name (CURLOPT_RESOLVE) after resolving it on threads of its own, so the only lookup it allows
// is of an address literal, which libcurl parses without a resolver thread. `allow` is the
// CURLOPT_RESOLVER_START_DATA pointer: NULL refuses, and the transfer fails as
// CURLE_COULDNT_RESOLVE_HOST instead of resolving on (and later stalling) the engine thread.
static inline int ccurl_resolver_start_gate(void *resolver_state, void *reserved, void *allow) {
    (void)resolver_state;
    (void)reserved;
    return allow ? 0 : 1;
}

static inline CURLcode ccurl_easy_setopt_resolver_gate(CURL *handle, int allow_lookup) {
    CURLcode result = curl_easy_setopt(handle, CURLOPT_RESOLVER_START_FUNCTION, ccurl_resolver_start_gate);
    if (result != CURLE_OK) return result;
    return curl_easy_setopt(handle, CURLOPT_RESOLVER_START_DATA, allow_lookup ? (void *)1 : NULL);
}

// CURLMsg's `data` is a union; Swift sees it, but reading `result` through a helper is clearer.
static inline CURLcode ccurl_msg_result(CURLMsg *message) {
    return message->data.result;
}

// The socket_action interface: libcurl says which sockets to watch (socket callback) and when to
// call back (timer callback); the engine watches them with epoll.
typedef int (*ccurl_socket_callback)(CURL *easy, curl_socket_t socket, int what, void *userp, void *socketp);
typedef int (*ccurl_timer_callback)(CURLM *multi, long timeout_ms, void *userp);

static inline CURLMcode ccurl_multi_setopt_socket_function(CURLM *handle, ccurl_socket_callback callback) {
    return curl_multi_setopt(handle, CURLMOPT_SOCKETFUNCTION, callback);
}

static inline CURLMcode ccurl_multi_setopt_timer_function(CURLM *handle, ccurl_timer_callback callback) {
    return curl_multi_setopt(handle, CURLMOPT_TIMERFUNCTION, callback);
}

static inline CURLMcode ccurl_multi_setopt_pointer(CURLM *handle, CURLMoption option, void *value) {
    return curl_multi_setopt(handle, option, value);
}

static const curl_socket_t ccurl_socket_timeout = CURL_SOCKET_TIMEOUT;

#ifdef __linux__
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <stdint.h>

// epoll_event is packed on x86_64; these keep Swift away from its layout.
static inline int ccurl_epoll_ctl(int epoll, int operation, int fd, uint32_t events) {
    struct epoll_event event;
    event.events = events;
    event.data.fd = fd;
    return epoll_ctl(epoll, operation, fd, &event);
}

#define CCURL_EPOLL_BATCH 256

static inline int ccurl_epoll_wait(int epoll, int *fds, uint32_t *events, int timeout_ms) {
    struct epoll_event ready[CCURL_EPOLL_BATCH];
    int count = epoll_wait(epoll, ready, CCURL_EPOLL_BATCH, timeout_ms);
    for (int index = 0; index < count; index++) {
        fds[index] = ready[index].data.fd;
        events[index] = ready[index].events;
    }
    return count;
}

static inline void ccurl_eventfd_signal(int fd) {
    uint64_t one = 1;
    ssize_t written = write(fd, &one, sizeof one);
    (void)written;
}

static inline void ccurl_eventfd_drain(int fd) {
    uint64_t value;
    ssize_t got = read(fd, &value, sizeof value);
    (void)got;
}

// Foundation's Thread.name does not reach the OS thread on Linux; profilers read this one.
static inline void ccurl_name_this_thread(const char *name) {
    pthread_setname_np(pthread_self(), name);
}
#endif

#endif
