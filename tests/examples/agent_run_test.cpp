// examples/agent_run against a real SQLite file: what the database holds
// after a retried run, a cancelled run and a run that gave up.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using rows = std::vector<std::vector<std::string>>;

// Runs a command; returns its exit status and output.
std::pair<int, std::string> run(const std::string& command) {
  std::string out;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return {-1, ""};
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

rows query(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sql;
  rows out;
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    std::vector<std::string> row;
    for (int c = 0; c < sqlite3_column_count(stmt); ++c) {
      const auto* t = sqlite3_column_text(stmt, c);
      row.emplace_back(t != nullptr ? reinterpret_cast<const char*>(t) : "NULL");
    }
    out.push_back(std::move(row));
  }
  sqlite3_finalize(stmt);
  return out;
}

class AgentRun : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() /
                        ("rebound-agent-run-" + std::to_string(::getpid())));
    fs::create_directories(*dir_);
    const auto [status, out] = run(std::string(AGENT_RUN_EXE) + " --db " +
                                   (*dir_ / "runs.sqlite").string() + " --initial 10ms");
    output_ = new std::string(out);
    ASSERT_EQ(status, 0) << out;
    ASSERT_EQ(sqlite3_open((*dir_ / "runs.sqlite").c_str(), &db_), SQLITE_OK);
  }
  static void TearDownTestSuite() {
    sqlite3_close(db_);
    fs::remove_all(*dir_);
    delete dir_;
    delete output_;
  }
  static inline fs::path* dir_ = nullptr;
  static inline std::string* output_ = nullptr;
  static inline sqlite3* db_ = nullptr;
};

TEST_F(AgentRun, ARetriedRunKeepsOnlyTheSuccessfulAttemptsMessages) {
  EXPECT_EQ(query(db_,
                  "SELECT run_id, attempt, status FROM runs WHERE conversation = 'retried' "
                  "ORDER BY attempt"),
            (rows{{"retried/run-1", "1", "failed"},
                  {"retried/run-2", "2", "failed"},
                  {"retried/run-3", "3", "succeeded"}}));
  // Each failed attempt had written part 1 before step 2 failed: discarded.
  EXPECT_EQ(query(db_,
                  "SELECT run_id, discarded FROM messages WHERE conversation = 'retried' "
                  "AND role = 'assistant' ORDER BY id"),
            (rows{{"retried/run-1", "1"},
                  {"retried/run-2", "1"},
                  {"retried/run-3", "0"},
                  {"retried/run-3", "0"},
                  {"retried/run-3", "0"}}));
  // The last attempt saw the user's message and nothing of the failed attempts.
  const auto user = query(db_,
                          "SELECT id FROM messages WHERE conversation = 'retried' AND "
                          "role = 'user'");
  ASSERT_EQ(user.size(), 1U);
  EXPECT_EQ(query(db_, "SELECT history FROM runs WHERE run_id = 'retried/run-3'"),
            (rows{{user[0][0]}}));
  EXPECT_EQ(query(db_, "SELECT status, attempts, error FROM conversations WHERE id = 'retried'"),
            (rows{{"succeeded", "3", ""}}));
  EXPECT_NE(output_->find("run retried: retry 2 of 5 in 20ms (provider answered 503)"),
            std::string::npos)
      << *output_;
}

TEST_F(AgentRun, ACancelledRunStopsMidStreamAndStartsNoOther) {
  EXPECT_EQ(query(db_, "SELECT run_id, status FROM runs WHERE conversation = 'cancelled'"),
            (rows{{"cancelled/run-1", "cancelled"}}));
  // Part 1 arrived before the cancel; it is not history any more.
  EXPECT_EQ(query(db_,
                  "SELECT count(*), sum(discarded) FROM messages WHERE conversation = "
                  "'cancelled' AND role = 'assistant'"),
            (rows{{"1", "1"}}));
  EXPECT_EQ(query(db_, "SELECT status, attempts FROM conversations WHERE id = 'cancelled'"),
            (rows{{"cancelled", "1"}}));
  EXPECT_NE(output_->find("run cancelled: cancelled during attempt after 1 attempt"),
            std::string::npos)
      << *output_;
}

TEST_F(AgentRun, TheFileCanBeUsedAgain) {
  const auto [status, out] = run(std::string(AGENT_RUN_EXE) +
                                 " --db=" + (*dir_ / "runs.sqlite").string() + " --initial 10ms");
  ASSERT_EQ(status, 0) << out;
  sqlite3* again = nullptr;
  ASSERT_EQ(sqlite3_open((*dir_ / "runs.sqlite").c_str(), &again), SQLITE_OK);
  EXPECT_EQ(query(again, "SELECT count(*) FROM runs"), (rows{{"10"}}));  // 3 + 1 + 6, not twice
  sqlite3_close(again);
}

TEST_F(AgentRun, ARunThatGaveUpIsFailedWithItsError) {
  const auto runs = query(db_,
                          "SELECT status, history, error FROM runs WHERE conversation = "
                          "'gave-up' ORDER BY attempt");
  ASSERT_EQ(runs.size(), 6U);  // 1 + 5 retries
  const auto user = query(db_,
                          "SELECT id FROM messages WHERE conversation = 'gave-up' AND "
                          "role = 'user'");
  ASSERT_EQ(user.size(), 1U);
  for (const auto& r : runs) {
    EXPECT_EQ(r, (std::vector<std::string>{"failed", user[0][0], "provider answered 503"}));
  }
  EXPECT_EQ(query(db_,
                  "SELECT count(*), sum(discarded) FROM messages WHERE conversation = "
                  "'gave-up' AND role = 'assistant'"),
            (rows{{"6", "6"}}));
  EXPECT_EQ(query(db_, "SELECT status, attempts, error FROM conversations WHERE id = 'gave-up'"),
            (rows{{"failed", "6", "provider answered 503"}}));
  EXPECT_NE(output_->find("failed after 6 attempts (retries_exhausted)"), std::string::npos);
}

TEST(AgentRunArguments, BadInputIsNamed) {
  auto [status, out] = run(std::string(AGENT_RUN_EXE) + " --db /tmp/x.sqlite --max-retries 99");
  EXPECT_EQ(status, 2);
  EXPECT_NE(out.find("--max-retries 99: expected an integer in 2..20"), std::string::npos) << out;
  std::tie(status, out) = run(std::string(AGENT_RUN_EXE) + " --help");
  EXPECT_EQ(status, 0);
  EXPECT_NE(out.find("usage: agent_run --db FILE"), std::string::npos) << out;
  std::tie(status, out) = run(std::string(AGENT_RUN_EXE) + " --db /tmp/x.sqlite --initial soon");
  EXPECT_EQ(status, 2);
  EXPECT_NE(out.find("--initial soon"), std::string::npos) << out;
  std::tie(status, out) = run(std::string(AGENT_RUN_EXE) + " --initial 1s");
  EXPECT_EQ(status, 2);
  EXPECT_NE(out.find("--db is required"), std::string::npos) << out;
  std::tie(status, out) = run(std::string(AGENT_RUN_EXE) + " --db /tmp/x.sqlite --retries 3");
  EXPECT_EQ(status, 2);
  EXPECT_NE(out.find("unknown option --retries"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists("/tmp/x.sqlite"));  // nothing created on bad input
}

}  // namespace
