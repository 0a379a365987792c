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

#ifdef __linux__
#include <pthread.h>

// Foundation's Thread.name does not reach the OS thread on Linux; profilers read this one.
static inline void ccurl_name_this_thread(const char *name) {
    pthread_setname_np(pthread_self(), name);
}
#endif

#endif
