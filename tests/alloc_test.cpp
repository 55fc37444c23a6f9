// The success path allocates nothing when nothing observes the call. This
// binary replaces the global operator new to count allocations.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "rebound/retry.hpp"
#include "rebound/testing/simulated_clock.hpp"

namespace {
std::atomic<long> allocations{0};
int* volatile escape = nullptr;  // keeps the compiler from eliding a new/delete pair
}  // namespace

void* operator new(std::size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

using namespace std::chrono_literals;

template <class F>
long allocations_during(F&& f) {
  const long before = allocations.load();
  f();
  return allocations.load() - before;
}

TEST(AllocTest, SuccessPathAllocatesNothing) {
  const auto timed = rebound::retry_policy{}.stop(rebound::stop::after_elapsed(5s));
  const auto attempts_only = rebound::retry_policy{}.stop(rebound::stop::after_attempts(3));
  int x = 0;
  EXPECT_EQ(allocations_during([&] {
              for (int i = 0; i < 1000; ++i) x += rebound::retry(timed, [&] { return i; });
            }),
            0);
  EXPECT_EQ(allocations_during([&] {
              for (int i = 0; i < 1000; ++i) x += rebound::retry(attempts_only, [&] { return i; });
            }),
            0);
  EXPECT_EQ(allocations_during([&] {
              for (int i = 0; i < 1000; ++i) {
                x += rebound::retry(timed, [&](const rebound::attempt& a) { return a.number(); });
              }
            }),
            0);
  std::stop_source s;
  EXPECT_EQ(allocations_during([&] {
              for (int i = 0; i < 1000; ++i)
                x += rebound::retry(
                    timed, [&] { return i; }, s.get_token());
            }),
            0);
  EXPECT_GT(x, 0);
}

TEST(AllocTest, TheCounterWorks) {
  // Guards the test above against a counter that never counts.
  EXPECT_GT(allocations_during([] { escape = new int(3); }), 0);
  delete escape;
}

}  // namespace
