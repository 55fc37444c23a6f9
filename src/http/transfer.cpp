// One libcurl transfer: handle options, header and body callbacks, and the
// mapping of CURLcode to transport_kind.
#include <curl/curl.h>

#include <algorithm>
#include <mutex>

#include "internal.hpp"
#include "rebound/http/client.hpp"

namespace rebound::http {

namespace {

using detail::trim;

transport_kind classify_curl(CURLcode c) {
  switch (c) {
    case CURLE_COULDNT_CONNECT:
      return transport_kind::connect_refused;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return transport_kind::resolve;
    case CURLE_OPERATION_TIMEDOUT:
      return transport_kind::timeout;
    case CURLE_GOT_NOTHING:
      return transport_kind::empty_reply;
    case CURLE_PARTIAL_FILE:
      return transport_kind::partial_body;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
      return transport_kind::reset;
    case CURLE_SSL_CONNECT_ERROR:
      return transport_kind::tls;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
      return transport_kind::tls_certificate;
    case CURLE_ABORTED_BY_CALLBACK:
      return transport_kind::cancelled;
    default:
      return transport_kind::other;
  }
}

std::once_flag curl_init;
using detail::transfer;

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) {
  static_cast<transfer*>(user)->body.append(data, size * n);
  return size * n;
}

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user) {
  detail::add_header_line(static_cast<transfer*>(user)->headers, std::string_view(data, size * n));
  return size * n;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* t = static_cast<transfer*>(user);
  return t->stop != nullptr && t->stop->stop_requested() ? 1 : 0;
}

}  // namespace

std::string_view to_string(transport_kind k) noexcept {
  switch (k) {
    case transport_kind::connect_refused:
      return "connect_refused";
    case transport_kind::connect_timeout:
      return "connect_timeout";
    case transport_kind::resolve:
      return "resolve";
    case transport_kind::reset:
      return "reset";
    case transport_kind::timeout:
      return "timeout";
    case transport_kind::empty_reply:
      return "empty_reply";
    case transport_kind::partial_body:
      return "partial_body";
    case transport_kind::tls:
      return "tls";
    case transport_kind::tls_certificate:
      return "tls_certificate";
    case transport_kind::cancelled:
      return "cancelled";
    case transport_kind::other:
      return "other";
  }
  return "other";
}

transport_error::transport_error(transport_kind kind, int curl_code, bool request_sent,
                                 const std::string& what)
    : std::runtime_error(what), kind_(kind), curl_code_(curl_code), sent_(request_sent) {}

namespace detail {

void add_header_line(header_list& headers, std::string_view line) {
  if (line.rfind("HTTP/", 0) == 0) {
    headers.clear();  // a new response (after 100 Continue, or a redirect)
  } else if (const auto colon = line.find(':'); colon != std::string_view::npos) {
    headers.emplace_back(std::string(trim(line.substr(0, colon))),
                         std::string(trim(line.substr(colon + 1))));
  }
}

void init_curl() {
  std::call_once(curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

void prepare_handle(CURL* curl) {
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &on_body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &on_header);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &on_progress);
}

curl_slist* setup_transfer(CURL* curl, const request& r, const header_list& extra,
                           std::optional<duration> limit, duration connect_timeout, transfer& t,
                           bool cancellable) {
  curl_easy_setopt(curl, CURLOPT_URL, r.url.c_str());
  // Every per-request option is set each time, so nothing leaks from the last request.
  const bool sends_body =
      !r.body.empty() || r.method == "POST" || r.method == "PUT" || r.method == "PATCH";
  if (r.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, nullptr);
  } else if (sends_body) {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 0L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, r.body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, r.method.c_str());
  } else {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);  // also clears a previous body and NOBODY
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, r.method == "GET" ? nullptr : r.method.c_str());
  }
  curl_slist* list = nullptr;
  for (const auto& [k, v] : r.headers) list = curl_slist_append(list, (k + ": " + v).c_str());
  for (const auto& [k, v] : extra) list = curl_slist_append(list, (k + ": " + v).c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, cancellable ? 0L : 1L);
  duration connect = connect_timeout;
  long total_ms = 0;  // none
  if (limit) {
    total_ms = static_cast<long>(std::max<std::int64_t>(
        1, std::chrono::duration_cast<std::chrono::milliseconds>(*limit).count()));
    connect = std::min(connect, *limit);
  }
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, total_ms);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::max<std::int64_t>(
                       1, std::chrono::duration_cast<std::chrono::milliseconds>(connect).count())));
  return list;
}

response finish_transfer(CURL* curl, CURLcode rc, transfer& t) {
  if (rc != CURLE_OK) {
    curl_off_t sent = 0;
    curl_easy_getinfo(curl, CURLINFO_REQUEST_SIZE, &sent);
    transport_kind kind = classify_curl(rc);
    if (kind == transport_kind::timeout) {
      curl_off_t connect_us = 0;
      curl_easy_getinfo(curl, CURLINFO_CONNECT_TIME_T, &connect_us);
      if (connect_us == 0 && sent == 0) kind = transport_kind::connect_timeout;
    }
    throw transport_error(kind, static_cast<int>(rc), sent > 0,
                          std::string(to_string(kind)) + ": " + curl_easy_strerror(rc));
  }
  response out;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out.status);
  out.headers = std::move(t.headers);
  out.body = std::move(t.body);
  return out;
}

}  // namespace detail

}  // namespace rebound::http
