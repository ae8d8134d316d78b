#include "svg_plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace mlar::bench {
namespace {

const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f"};

std::string escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else o += c;
  }
  return o;
}

// 512 -> "512", 16384 -> "16K", 3e9 -> "3G", 0.25 -> "0.25".
std::string compact(double v) {
  const double a = std::fabs(v);
  if (a >= 1e9 && std::fmod(v, 1e9) == 0) return fmt::format("{}G", v / 1e9);
  if (a >= 1024 && std::fmod(v, 1024) == 0) return fmt::format("{}K", v / 1024);
  if (a >= 1e6) return fmt::format("{:.3g}M", v / 1e6);
  return fmt::format("{:.4g}", v);
}

struct Axis {
  bool log = false;
  double lo = 0, hi = 1;  // in transformed units
  double t(double v) const { return log ? std::log10(v) : v; }
};

// Tick values (untransformed) between lo and hi.
std::vector<double> ticks(const Axis& a, bool powers_of_two) {
  std::vector<double> out;
  if (a.log) {
    if (powers_of_two) {
      for (double e = std::floor(a.lo / std::log10(2.0)); e <= std::ceil(a.hi / std::log10(2.0)); e += 1) {
        const double v = std::pow(2.0, e), tv = std::log10(v);
        if (tv >= a.lo - 1e-9 && tv <= a.hi + 1e-9) out.push_back(v);
      }
      if (out.size() > 8) {  // every other power
        std::vector<double> thin;
        for (size_t i = 0; i < out.size(); i += 2) thin.push_back(out[i]);
        out = thin;
      }
    } else {
      for (double e = std::floor(a.lo); e <= std::ceil(a.hi); e += 1)
        for (double m : {1.0, 2.0, 5.0}) {
          const double v = m * std::pow(10.0, e), tv = std::log10(v);
          if (tv >= a.lo - 1e-9 && tv <= a.hi + 1e-9) out.push_back(v);
        }
    }
    return out;
  }
  const double span = a.hi - a.lo, raw = span / 5;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  for (double v = std::ceil(a.lo / step) * step; v <= a.hi + 1e-9 * span; v += step) out.push_back(v);
  return out;
}

Axis make_axis(const std::vector<double>& values, bool log, bool from_zero) {
  Axis a;
  a.log = log;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (double v : values) {
    if (log && v <= 0) continue;
    lo = std::min(lo, a.t(v));
    hi = std::max(hi, a.t(v));
  }
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  if (!log && from_zero) lo = std::min(lo, 0.0);
  if (hi - lo < 1e-12) hi = lo + 1;
  const double pad = log ? 0.03 * (hi - lo) : 0.05 * (hi - lo);
  a.lo = (!log && from_zero && lo == 0) ? 0 : lo - pad;
  a.hi = hi + pad;
  return a;
}

}  // namespace

std::string svg_chart(const std::vector<Panel>& panels, int columns, int width, int height) {
  const int rows = (static_cast<int>(panels.size()) + columns - 1) / columns;
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" "
      "font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      columns * width, rows * height);
  const double ml = 70, mr = 15, mt = 30, mb = 45;
  for (size_t p = 0; p < panels.size(); ++p) {
    const Panel& P = panels[p];
    const double ox = static_cast<double>(static_cast<int>(p) % columns) * width,
                 oy = static_cast<double>(static_cast<int>(p) / columns) * height;
    const double pw = width - ml - mr, ph = height - mt - mb;
    std::vector<double> xs, ys;
    for (const auto& se : P.series) {
      xs.insert(xs.end(), se.x.begin(), se.x.end());
      ys.insert(ys.end(), se.y.begin(), se.y.end());
    }
    const Axis ax = make_axis(xs, P.log_x, false), ay = make_axis(ys, P.log_y, true);
    auto X = [&](double v) { return ox + ml + (ax.t(v) - ax.lo) / (ax.hi - ax.lo) * pw; };
    auto Y = [&](double v) { return oy + mt + ph - (ay.t(v) - ay.lo) / (ay.hi - ay.lo) * ph; };
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"14\" font-weight=\"bold\">{}</text>\n", ox + ml,
                     oy + 20, escape(P.title));
    s += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"none\" stroke=\"#444\"/>\n",
                     ox + ml, oy + mt, pw, ph);
    for (double v : ticks(ax, P.x_powers_of_two)) {
      s += fmt::format("<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1:.1f}\" y2=\"{2:.1f}\" stroke=\"#ddd\"/>\n", X(v),
                       oy + mt, oy + mt + ph);
      s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", X(v), oy + mt + ph + 16,
                       compact(v));
    }
    for (double v : ticks(ay, false)) {
      s += fmt::format("<line x1=\"{0:.1f}\" x2=\"{1:.1f}\" y1=\"{2:.1f}\" y2=\"{2:.1f}\" stroke=\"#ddd\"/>\n", ox + ml,
                       ox + ml + pw, Y(v));
      s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", ox + ml - 5, Y(v) + 4,
                       compact(v));
    }
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", ox + ml + pw / 2,
                     oy + height - 8, escape(P.x_label));
    s += fmt::format("<text transform=\"translate({:.1f},{:.1f}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
                     ox + 16, oy + mt + ph / 2, escape(P.y_label));
    for (size_t i = 0; i < P.series.size(); ++i) {
      const Series& se = P.series[i];
      const char* color = kColors[i % std::size(kColors)];
      std::string pts;
      for (size_t k = 0; k < se.x.size(); ++k) {
        if ((P.log_x && se.x[k] <= 0) || (P.log_y && se.y[k] <= 0)) continue;
        pts += fmt::format("{:.1f},{:.1f} ", X(se.x[k]), Y(se.y[k]));
        s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.5\" fill=\"{}\"/>\n", X(se.x[k]), Y(se.y[k]), color);
      }
      s += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{}/>\n", pts, color,
                       se.dashed ? " stroke-dasharray=\"6,4\"" : "");
      const double ly = oy + mt + 14 + 15 * static_cast<double>(i);
      s += fmt::format("<line x1=\"{0:.1f}\" x2=\"{1:.1f}\" y1=\"{2:.1f}\" y2=\"{2:.1f}\" stroke=\"{3}\" stroke-width=\"2\"{4}/>\n",
                       ox + width - mr - 190, ox + width - mr - 170, ly - 4, color,
                       se.dashed ? " stroke-dasharray=\"6,4\"" : "");
      s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n", ox + width - mr - 165, ly, escape(se.name));
    }
  }
  return s + "</svg>\n";
}

}  // namespace mlar::bench
