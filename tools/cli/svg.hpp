// Minimal SVG charts for rebound simulate: no dependencies, open in any browser.
#pragma once

#include <string>
#include <vector>

namespace rebound::cli::svg {

struct series {
  std::string name;
  std::vector<double> values;
};

/// Grouped bars: one group per x label, one bar per series.
std::string bars(const std::string& title, const std::string& y_label,
                 const std::vector<std::string>& x_labels, const std::vector<series>& data);

/// Lines over x = 0..n-1 (x_label names the unit); an optional shaded band
/// [band_from, band_to) marks an interval (e.g. an outage).
std::string lines(const std::string& title, const std::string& x_label, const std::string& y_label,
                  const std::vector<series>& data, double band_from = -1, double band_to = -1);

/// Several charts stacked in one SVG document.
std::string stack(const std::vector<std::string>& charts);

}  // namespace rebound::cli::svg
