// A minimal SVG line chart for the benchmark report: panels on a grid, each with
// log-scaled (base 2 or 10) or linear axes, a legend, and one polyline per series.
#pragma once
#include <string>
#include <vector>

namespace mlar::bench {

struct Series {
  std::string name;
  std::vector<double> x, y;
  bool dashed = false;
};

struct Panel {
  std::string title, x_label, y_label;
  bool log_x = true, log_y = false;
  std::vector<Series> series;
  bool x_powers_of_two = true;  // log x ticks at powers of 2 (else 1, 2, 5 x 10^k)
};

// Panels laid out `columns` wide, each `width` x `height` pixels.
std::string svg_chart(const std::vector<Panel>& panels, int columns, int width = 520, int height = 360);

}  // namespace mlar::bench
