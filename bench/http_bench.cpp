// The HTTP adapter's cost over raw libcurl: both GET the same loopback
// server, reusing one connection (one easy handle each).
#include <benchmark/benchmark.h>
#include <curl/curl.h>

#include "fault_server.hpp"
#include "rebound/http/client.hpp"

namespace {

rebound::fault::server& local_server() {
  static rebound::fault::server s;  // 127.0.0.1, a free port, for the whole run
  return s;
}

std::size_t keep_body(char* data, std::size_t size, std::size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

// Baseline: a raw easy handle, as a careful libcurl user would write it.
void BM_curl_get_local(benchmark::State& state) {
  const std::string url = local_server().url("/status/200");
  CURL* curl = curl_easy_init();
  std::string body;
  for (auto _ : state) {
    body.clear();
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &keep_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    if (curl_easy_perform(curl) != CURLE_OK) state.SkipWithError("curl failed");
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    benchmark::DoNotOptimize(status);
  }
  curl_easy_cleanup(curl);
}
BENCHMARK(BM_curl_get_local)->Unit(benchmark::kMicrosecond);

// The same request through rebound::http::client (first-try success).
void BM_http_get_local(benchmark::State& state) {
  const std::string url = local_server().url("/status/200");
  rebound::http::client c;
  for (auto _ : state) {
    auto r = c.get(url);
    if (r.status != 200) state.SkipWithError("unexpected status");
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_http_get_local)->Unit(benchmark::kMicrosecond);

}  // namespace
