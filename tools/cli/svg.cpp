#include "svg.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace rebound::cli::svg {

namespace {

constexpr int width = 900;
constexpr int height = 380;
constexpr int left = 70, right = 250, top = 40, bottom = 50;
const char* const palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                               "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<')
      o += "&lt;";
    else if (c == '>')
      o += "&gt;";
    else if (c == '&')
      o += "&amp;";
    else
      o += c;
  }
  return o;
}

std::string num(double v) {
  char buf[32];
  if (std::fabs(v) >= 1e6)
    std::snprintf(buf, sizeof buf, "%.3gM", v / 1e6);
  else if (std::fabs(v) >= 1e4)
    std::snprintf(buf, sizeof buf, "%.3gk", v / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

// A "nice" axis maximum: 1, 2 or 5 times a power of ten.
double nice_max(double v) {
  if (v <= 0) return 1;
  const double p = std::pow(10, std::floor(std::log10(v)));
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * p >= v) return m * p;
  }
  return 10 * p;
}

void frame(std::ostringstream& o, const std::string& title, const std::string& x_label,
           const std::string& y_label, double y_max) {
  o << "<g font-family='sans-serif' font-size='12'>\n";
  o << "<text x='" << width / 2 << "' y='22' text-anchor='middle' font-size='15'>" << esc(title)
    << "</text>\n";
  const int plot_h = height - top - bottom;
  for (int i = 0; i <= 5; ++i) {
    const double v = y_max * i / 5;
    const int y = top + plot_h - plot_h * i / 5;
    o << "<line x1='" << left << "' x2='" << width - right << "' y1='" << y << "' y2='" << y
      << "' stroke='#ddd'/>\n<text x='" << left - 6 << "' y='" << y + 4 << "' text-anchor='end'>"
      << num(v) << "</text>\n";
  }
  o << "<text x='" << (left + width - right) / 2 << "' y='" << height - 10
    << "' text-anchor='middle'>" << esc(x_label) << "</text>\n";
  o << "<text transform='translate(16," << top + plot_h / 2
    << ") rotate(-90)' text-anchor='middle'>" << esc(y_label) << "</text>\n";
}

void legend(std::ostringstream& o, const std::vector<series>& data) {
  for (std::size_t i = 0; i < data.size(); ++i) {
    const int y = top + 10 + static_cast<int>(i) * 20;
    o << "<rect x='" << width - right + 15 << "' y='" << y - 10 << "' width='12' height='12' fill='"
      << palette[i % 10] << "'/>\n<text x='" << width - right + 33 << "' y='" << y << "'>"
      << esc(data[i].name) << "</text>\n";
  }
}

}  // namespace

std::string bars(const std::string& title, const std::string& y_label,
                 const std::vector<std::string>& x_labels, const std::vector<series>& data) {
  double y_max = 0;
  for (const auto& s : data) {
    for (double v : s.values) y_max = std::max(y_max, v);
  }
  y_max = nice_max(y_max);
  std::ostringstream o;
  o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << width << "' height='" << height
    << "'>\n<rect width='100%' height='100%' fill='white'/>\n";
  frame(o, title, "clients", y_label, y_max);
  const int plot_w = width - left - right;
  const int plot_h = height - top - bottom;
  const double group = static_cast<double>(plot_w) / std::max<std::size_t>(1, x_labels.size());
  const double bar = group * 0.8 / std::max<std::size_t>(1, data.size());
  for (std::size_t g = 0; g < x_labels.size(); ++g) {
    const double gx = left + g * group + group * 0.1;
    for (std::size_t s = 0; s < data.size(); ++s) {
      const double v = g < data[s].values.size() ? data[s].values[g] : 0;
      const double h = plot_h * v / y_max;
      o << "<rect x='" << gx + s * bar << "' y='" << top + plot_h - h << "' width='"
        << std::max(bar - 1, 1.0) << "' height='" << h << "' fill='" << palette[s % 10]
        << "'><title>" << esc(data[s].name) << ", " << esc(x_labels[g]) << ": " << num(v)
        << "</title></rect>\n";
    }
    o << "<text x='" << gx + group * 0.4 << "' y='" << top + plot_h + 16
      << "' text-anchor='middle'>" << esc(x_labels[g]) << "</text>\n";
  }
  legend(o, data);
  o << "</g>\n</svg>\n";
  return o.str();
}

std::string lines(const std::string& title, const std::string& x_label, const std::string& y_label,
                  const std::vector<series>& data, double band_from, double band_to) {
  double y_max = 0;
  std::size_t n = 0;
  for (const auto& s : data) {
    n = std::max(n, s.values.size());
    for (double v : s.values) y_max = std::max(y_max, v);
  }
  y_max = nice_max(y_max);
  std::ostringstream o;
  o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << width << "' height='" << height
    << "'>\n<rect width='100%' height='100%' fill='white'/>\n";
  const int plot_w = width - left - right;
  const int plot_h = height - top - bottom;
  const double dx = static_cast<double>(plot_w) / std::max<std::size_t>(1, n - 1);
  if (band_from >= 0 && band_to > band_from) {
    o << "<rect x='" << left + band_from * dx << "' y='" << top << "' width='"
      << (band_to - band_from) * dx << "' height='" << plot_h
      << "' fill='#fbe3e3'><title>trigger</title></rect>\n";
  }
  frame(o, title, x_label, y_label, y_max);
  for (std::size_t i = 0; i <= 10 && n > 1; ++i) {
    const std::size_t x = (n - 1) * i / 10;
    o << "<text x='" << left + x * dx << "' y='" << top + plot_h + 16 << "' text-anchor='middle'>"
      << x << "</text>\n";
  }
  for (std::size_t s = 0; s < data.size(); ++s) {
    o << "<polyline fill='none' stroke-width='2' stroke='" << palette[s % 10] << "' points='";
    for (std::size_t x = 0; x < data[s].values.size(); ++x) {
      o << left + x * dx << "," << top + plot_h - plot_h * data[s].values[x] / y_max << " ";
    }
    o << "'><title>" << esc(data[s].name) << "</title></polyline>\n";
  }
  legend(o, data);
  o << "</g>\n</svg>\n";
  return o.str();
}

std::string stack(const std::vector<std::string>& charts) {
  std::ostringstream o;
  o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << width << "' height='"
    << height * static_cast<int>(charts.size()) << "'>\n";
  for (std::size_t i = 0; i < charts.size(); ++i) {
    o << "<svg y='" << height * static_cast<int>(i) << "'>"
      << charts[i].substr(charts[i].find('>') + 1) << "\n";
  }
  o << "</svg>\n";
  return o.str();
}

}  // namespace rebound::cli::svg
