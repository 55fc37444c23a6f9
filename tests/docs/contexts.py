"""What the reader has around each C++ block of the docs (tests/docs/check_docs.py).

Key: (file relative to the repository root, index of the block among that
file's ```cpp blocks, pseudo ones included, from 0). Value:

  starts        how the block's first code line (after #include lines) begins
  wrap          "namespace", "function" or "coroutine" (see check_docs.py)
  returns       for "function": the return type (default void)
  doc_includes  rebound headers the doc tells the reader to include (named in
                the file's preamble or in the block's own `## ` section; the
                check verifies that)
  includes      what the declarations below need themselves (Asio, gtest,
                gRPC, the standard library), and the rebound header of a
                reader-side object's type where the doc gives that header
                elsewhere (commented)
  decls         the reader's own names the block uses: their types,
                variables and functions. Never rebound API.

The declarations go into `namespace reader`, so a reader's `socket`, `log`
or `clock` does not collide with the C library's.
"""

STD = ["optional", "stdexcept", "stop_token", "string", "string_view", "vector"]

# A stand-in for the code protoc and grpc_cpp_plugin generate for a
# `service Orders { rpc GetOrder(GetOrderRequest) returns (GetOrderReply); }`
# in package `shop`, with the same shape as the generated client classes
# (StubInterface, its async_interface with the callback and reactor
# overloads, Stub, Stub::async, NewStub). The only generated code in the
# build is tools/grpc_server/echo.proto's rebound.test.Echo, which has no
# GetOrder; the messages here are plain structs.
SHOP_ORDERS = r"""
namespace shop {
struct GetOrderRequest { std::string id; };
struct GetOrderReply { std::string body; };
class Orders final {
 public:
  class StubInterface {
   public:
    virtual ~StubInterface() {}
    virtual ::grpc::Status GetOrder(::grpc::ClientContext* context, const GetOrderRequest& request,
                                    GetOrderReply* response) = 0;
    class async_interface {
     public:
      virtual ~async_interface() {}
      virtual void GetOrder(::grpc::ClientContext* context, const GetOrderRequest* request,
                            GetOrderReply* response, std::function<void(::grpc::Status)>) = 0;
      virtual void GetOrder(::grpc::ClientContext* context, const GetOrderRequest* request,
                            GetOrderReply* response, ::grpc::ClientUnaryReactor* reactor) = 0;
    };
    virtual class async_interface* async() { return nullptr; }
  };
  class Stub final : public StubInterface {
   public:
    ::grpc::Status GetOrder(::grpc::ClientContext* context, const GetOrderRequest& request,
                            GetOrderReply* response) override;
    class async final : public StubInterface::async_interface {
     public:
      void GetOrder(::grpc::ClientContext* context, const GetOrderRequest* request,
                    GetOrderReply* response, std::function<void(::grpc::Status)>) override;
      void GetOrder(::grpc::ClientContext* context, const GetOrderRequest* request,
                    GetOrderReply* response, ::grpc::ClientUnaryReactor* reactor) override;
    };
    class async* async() override { return &async_stub_; }
   private:
    class async async_stub_;
  };
  static std::unique_ptr<Stub> NewStub(const std::shared_ptr<::grpc::ChannelInterface>& channel,
                                       const ::grpc::StubOptions& options = ::grpc::StubOptions());
};
}  // namespace shop
"""
GRPC_INCLUDES = ["functional", "memory", "string", "grpcpp/channel.h",
                 "grpcpp/support/client_callback.h", "grpcpp/support/stub_options.h"]

NOT_FOUND = r"""
struct not_found_error : std::runtime_error {
  not_found_error() : std::runtime_error("not found") {}
};
"""

# The policy the reader built earlier in the same doc.
POLICY = "inline const rebound::retry_policy policy{};\n"

HTTP_CLIENT = r"""
struct http_client {  // the reader's own asynchronous HTTP client
  asio::awaitable<std::string> get(const std::string& url);
};
inline http_client client;
inline std::string url;
"""

SNAPSHOT = r"""
struct snapshot { std::string body; };
std::optional<snapshot> find_snapshot(rebound::pg::connection& c);
extern rebound::pg::router db;
"""

CONTEXTS = {
    # ---------------------------------------------------------------- README
    ("README.md", 0): dict(
        starts='using namespace std::chrono_literals;',
        wrap="function",
        includes=STD + ["chrono"],
        decls=NOT_FOUND + r"""
struct api_error { bool transient() const; };
struct run_info { std::string state; };
template <class T, class E>
struct result {  // the reader's expected-like type
  bool has_value() const;
  explicit operator bool() const;
  const T& value() const;
  const E& error() const;
};
struct api_client {
  run_info get_run(const std::string& id);
  result<run_info, api_error> try_get_run(const std::string& id,
                                          std::optional<std::chrono::nanoseconds> timeout);
};
inline api_client api;
inline std::string id;
inline std::stop_token stop_token;
template <class... A>
void log(std::string_view format, A&&... args);
""",
    ),
    ("README.md", 1): dict(
        starts='const auto p = policy.attempt_timeout(',
        wrap="coroutine",
        includes=["string"],
        decls="using namespace std::chrono_literals;  // as in the block before\n"
        + POLICY + HTTP_CLIENT + r"""
struct row { std::string body; };
asio::awaitable<row> read_row();
""",
    ),
    ("README.md", 2): dict(
        starts='auto s = rebound::settings_from_json_file(',
        wrap="function",
        includes=["stdexcept"],
        decls=NOT_FOUND,
    ),
    # -------------------------------------------------------------- async.md
    ("docs/async.md", 0): dict(
        starts='// Inside a coroutine: the result',
        wrap="coroutine",
        doc_includes=["rebound/async.hpp"],
        includes=["exception", "future", "string", "asio/io_context.hpp", "asio/ip/tcp.hpp",
                  "asio/use_future.hpp"],
        decls=POLICY + HTTP_CLIENT + r"""
inline asio::io_context io;
asio::awaitable<std::string> fn();
inline asio::ip::tcp::socket socket(io);
inline asio::ip::tcp::endpoint ep;
""",
    ),
    ("docs/async.md", 1): dict(
        starts='rebound::async_retry(io.get_executor(), policy,',
        wrap="function",
        doc_includes=["rebound/async.hpp"],
        includes=["array", "cstddef", "exception", "asio/buffer.hpp", "asio/io_context.hpp",
                  "asio/ip/tcp.hpp"],
        decls=POLICY + r"""
inline asio::io_context io;
inline asio::ip::tcp::socket socket(io);
inline std::array<char, 4096> buf;
inline auto handler = [](std::exception_ptr e, std::size_t n) {};
""",
    ),
    ("docs/async.md", 2): dict(
        starts='co_await rebound::async_retry(outer,',
        wrap="coroutine",
        doc_includes=["rebound/async.hpp"],
        includes=["string"],
        decls=r"""
inline const rebound::retry_policy outer{};
inline const rebound::retry_policy inner{};
struct row { std::string body; };
asio::awaitable<row> read_row();
""",
    ),
    ("docs/async.md", 3): dict(
        starts='rebound::testing::simulated_clock clock;',
        wrap="function",
        includes=["future", "string", "asio/io_context.hpp", "asio/use_future.hpp"],
        decls=POLICY + "asio::awaitable<std::string> fn();\n",
    ),
    # --------------------------------------------------------------- grpc.md
    ("docs/grpc.md", 0): dict(
        starts='auto channel = rebound::grpc::make_channel(',
        wrap="function",
        doc_includes=["rebound/grpc/client.hpp"],
        includes=GRPC_INCLUDES,
        decls="using namespace std::chrono_literals;\n" + SHOP_ORDERS + r"""
inline shop::GetOrderRequest request;
""",
    ),
    ("docs/grpc.md", 1): dict(
        starts='auto hedged = o;',
        wrap="function",
        doc_includes=["rebound/grpc/client.hpp"],
        includes=GRPC_INCLUDES,
        decls="using namespace std::chrono_literals;\n" + SHOP_ORDERS + r"""
// What the block before made:
inline const rebound::grpc::options o{};
inline std::unique_ptr<shop::Orders::Stub> stub;
inline shop::GetOrderRequest request;
inline shop::GetOrderReply reply;
inline const rebound::grpc::call_spec spec{};
inline ::grpc::Status s;
""",
    ),
    ("docs/grpc.md", 2): dict(
        starts='auto m = rebound::grpc::policy_from_service_config(',
        wrap="function",
        doc_includes=["rebound/grpc/service_config.hpp", "rebound/grpc/client.hpp"],
        includes=GRPC_INCLUDES,
        decls=r"""
inline std::string json;  // the service config's text
inline std::shared_ptr<::grpc::Channel> channel;
""",
    ),
    # --------------------------------------------------------------- http.md
    ("docs/http.md", 0): dict(
        starts='rebound::http::client c(',
        wrap="function",
        doc_includes=["rebound/http/client.hpp"],
        includes=["string"],
        decls="using namespace std::chrono_literals;\n"
        'inline std::string json = R"({"title":"x"})";\n',
    ),
    ("docs/http.md", 1): dict(
        starts='rebound::http::async_client http(',
        wrap="coroutine",
        doc_includes=["rebound/http/async_client.hpp"],
        includes=["asio/io_context.hpp"],
        decls=POLICY + "inline asio::io_context io;\n",
    ),
    # ------------------------------------------------------ observability.md
    ("docs/observability.md", 0): dict(
        starts='rebound::metrics::registry reg;',
        wrap="function",
        doc_includes=["rebound/metrics.hpp", "rebound/pg/metrics.hpp", "rebound/redis/metrics.hpp"],
        includes=["memory"],
        decls=r"""
extern rebound::circuit_breaker breaker;
extern rebound::run_supervisor supervisor;
extern rebound::pg::router router;
extern std::shared_ptr<rebound::redis::shared_budget> fleet_budget;
""",
    ),
    # ----------------------------------------------------------------- pg.md
    ("docs/pg.md", 0): dict(
        starts='rebound::pg::router db(primary_conninfo,',
        wrap="function",
        returns="http_response",
        includes=STD,
        decls=r"""
inline std::string primary_conninfo = "host=db1 dbname=app";
inline std::string replica_conninfo = "host=db2 dbname=app";
inline std::string id;
struct snapshot { std::string body; };
struct http_response { int status; };
http_response http_404();
""",
    ),
    ("docs/pg.md", 1): dict(
        starts='auto tx = db.begin();',
        wrap="function",
        doc_includes=["rebound/pg/router.hpp"],
        includes=STD,
        decls=SNAPSHOT,
    ),
    ("docs/pg.md", 2): dict(
        starts='rebound::pg::session_token token;',
        wrap="function",
        doc_includes=["rebound/pg/router.hpp"],
        includes=STD,
        decls=SNAPSHOT + r"""
struct http_response { void set_cookie(std::string_view name, std::string_view value); };
struct http_request { std::string cookie(std::string_view name) const; };
inline http_response response;
inline http_request request;
""",
    ),
    ("docs/pg.md", 3): dict(
        starts='auto o = rebound::pg::router_options_from_json(',
        wrap="function",
        doc_includes=["rebound/pg/router.hpp"],
        includes=STD,
        decls=r"""
using namespace std::chrono_literals;
inline std::string file_text;  // the settings file's JSON
inline std::string primary = "host=db1 dbname=app";
inline std::string replica = "host=db2 dbname=app";
""",
    ),
    # -------------------------------------------------------------- redis.md
    ("docs/redis.md", 0): dict(
        starts='auto redis = std::make_shared<rebound::redis::link>(',
        wrap="function",
        includes=["memory"],
    ),
    # ---------------------------------------------------------- reference.md
    ("docs/reference.md", 0): dict(
        starts='policy.retry_on<timeout_error, not_found_error>()',
        wrap="function",
        doc_includes=["rebound/classify.hpp"],
        # The reader's policy: a retry_policy, from "The policy (rebound/policy.hpp)".
        includes=STD + ["chrono", "rebound/policy.hpp"],
        decls="inline rebound::retry_policy policy{};\n" + NOT_FOUND + r"""
struct timeout_error : std::runtime_error {
  timeout_error() : std::runtime_error("timeout") {}
};
struct http_error : std::runtime_error {
  int status;
  std::chrono::milliseconds retry_after;
};
struct response { int status; std::string body; };
struct api_error { bool transient() const; };
""",
    ),
    # ("docs/reference.md", 1) is ```cpp pseudo (signatures).
    ("docs/reference.md", 2): dict(
        starts='rebound::retry_call call(policy,',
        wrap="function",
        doc_includes=["rebound/call.hpp"],
        includes=STD + ["exception"],
        decls=POLICY + r"""
inline std::stop_token token;
inline rebound::call_report report;
struct outcome { bool ok; rebound::verdict verdict; std::string what; };
outcome send();
inline bool safe = true;
inline std::exception_ptr last_exception;
""",
    ),
    ("docs/reference.md", 3): dict(
        starts='rebound::retry_state s(policy, start);',
        wrap="function",
        doc_includes=["rebound/call.hpp"],
        decls=POLICY + r"""
extern const rebound::time_point start;
extern const rebound::time_point now;
extern const rebound::verdict verdict;
""",
    ),
    ("docs/reference.md", 4): dict(
        starts='auto s = rebound::settings_builder{}',
        wrap="function",
        doc_includes=["rebound/config.hpp"],
    ),
    ("docs/reference.md", 5): dict(
        starts='rebound::testing::simulated_clock clock;',
        wrap="function",
        includes=STD + ["gtest/gtest.h"],
        decls="using namespace std::chrono_literals;\n" + POLICY + NOT_FOUND,
    ),
    # --------------------------------------------------------------- runs.md
    ("docs/runs.md", 0): dict(
        starts='rebound::run_supervisor runs(',
        wrap="function",
        doc_includes=["rebound/run_supervisor.hpp"],
        includes=STD,
        decls=r"""
struct provider_error : std::runtime_error {
  int status;
};
struct ui_t { void show(const std::string& text); };
inline ui_t ui;
inline std::string conversation_id;
std::vector<std::string> history(const std::string& conversation_id);
struct agent_t {
  void stream(const std::string& run_id, const std::vector<std::string>& history,
              std::stop_token stop);
};
inline agent_t agent;
struct db_t {
  std::string insert_run(const std::string& key, int attempt);
  void discard_messages(const std::string& run_id);
};
inline db_t db;
""",
    ),
}
