// The success path allocates nothing when nothing observes the call. This
// binary replaces the global operator new to count allocations.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "rebound/retry.hpp"
#include "rebound/testing/simulated_clock.hpp"

#ifdef REBOUND_ALLOC_TESTS_ASYNC
#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include "rebound/async.hpp"
#endif

namespace {
std::atomic<long> allocations{0};
// While set, every allocation fails: out of memory, on purpose.
std::atomic<bool> out_of_memory{false};
int* volatile escape = nullptr;  // keeps the compiler from eliding a new/delete pair
}  // namespace

void* operator new(std::size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (out_of_memory.load(std::memory_order_relaxed)) throw std::bad_alloc();
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

TEST(AllocTest, TheOutOfMemorySwitchWorks) {
  out_of_memory = true;
  bool threw = false;
  try {
    escape = new int(3);
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  out_of_memory = false;
  EXPECT_TRUE(threw);
}

#ifdef REBOUND_ALLOC_TESTS_ASYNC
// An operation that fails (posted) with an exception it made beforehand.
// Two pointers, marked relocatable: it stays inside the composed operation,
// so rebound allocates nothing before the first failure. Memory runs out
// just before the failure is delivered, and comes back when the call
// completes.
struct starving_op {
  asio::io_context* io;
  int* calls;
  template <class Token>
  auto operator()(Token&& token) const {
    return asio::async_initiate<Token, void(std::exception_ptr, int)>(
        [io = io, calls = calls](auto handler) {
          const int n = ++*calls;
          auto e = std::make_exception_ptr(
              std::system_error(std::make_error_code(std::errc::connection_refused)));
          asio::post(*io, [h = std::move(handler), e, n]() mutable {
            out_of_memory = true;
            std::move(h)(e, n);
          });
        },
        token);
  }
};

TEST(AllocTest, TheLeanAsyncPathOutOfMemoryAtItsFirstFailureEndsTheCallWithBadAlloc) {
  // The lean token path makes the engine at the first failure, inside a
  // completion: a bad_alloc there must reach the caller's handler, not
  // escape from io_context::run().
  asio::io_context io;
  const auto p = rebound::retry_policy{}
                     .stop(rebound::stop::after_attempts(3))
                     .backoff(rebound::backoff::constant(0ms))
                     .retry_on<std::system_error>();
  ASSERT_TRUE(rebound::retry_call::plain_first_attempt(p, {}));
  int calls = 0;
  std::exception_ptr error;
  bool completed = false;
  rebound::async_retry(io.get_executor(), p, rebound::relocatable(starving_op{&io, &calls}), {},
                       [&](std::exception_ptr e, int) {
                         out_of_memory = false;
                         completed = true;
                         error = std::move(e);
                       });
  bool escaped = false;
  try {
    io.run();
  } catch (...) {
    escaped = true;
  }
  out_of_memory = false;  // whatever happened, before gtest reports it
  EXPECT_FALSE(escaped);
  ASSERT_TRUE(completed);
  EXPECT_EQ(calls, 1);
  ASSERT_TRUE(error);
  EXPECT_THROW(std::rethrow_exception(error), std::bad_alloc);
}
#endif

}  // namespace
