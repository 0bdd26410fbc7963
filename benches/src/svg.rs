//! A horizontal bar chart as hand-written SVG: `bench-report --svg` draws the CPU per
//! forwarded packet of every configuration with it. Plain text, no plotting dependency.

use std::fmt::Write as _;

const ROW: f64 = 22.0;
const LABEL_WIDTH: f64 = 190.0;
const BAR_WIDTH: f64 = 460.0;
const VALUE_WIDTH: f64 = 90.0;
const TOP: f64 = 44.0;

/// One bar: its label, its value, and whether to draw it in the accent colour.
#[derive(Clone, Debug)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub accent: bool,
}

/// The chart: `title` on top, one row per bar, values printed with `unit` after the bar.
pub fn bar_chart(title: &str, subtitle: &str, unit: &str, bars: &[Bar]) -> String {
    let width = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH;
    let height = TOP + ROW * bars.len() as f64 + 12.0;
    let max = bars.iter().map(|b| b.value).filter(|v| v.is_finite()).fold(0.0, f64::max).max(1e-9);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(svg, r#"<text x="8" y="18" font-size="14" font-weight="bold">{}</text>"#, escape(title));
    let _ = writeln!(svg, r##"<text x="8" y="34" fill="#555">{}</text>"##, escape(subtitle));
    for (i, bar) in bars.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        let value = if bar.value.is_finite() { bar.value.max(0.0) } else { 0.0 };
        let length = BAR_WIDTH * value / max;
        let fill = if bar.accent { "#d9822b" } else { "#4a7fb5" };
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LABEL_WIDTH - 8.0,
            y + 14.0,
            escape(&bar.label)
        );
        let _ = writeln!(
            svg,
            r#"<rect x="{LABEL_WIDTH}" y="{:.1}" width="{length:.1}" height="{:.1}" fill="{fill}"/>"#,
            y + 3.0,
            ROW - 6.0
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}">{value:.0} {}</text>"#,
            LABEL_WIDTH + length + 6.0,
            y + 14.0,
            escape(unit)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_bar_is_the_largest_value() {
        let bars = [
            Bar { label: "kernel".into(), value: 1000.0, accent: false },
            Bar { label: "a < b".into(), value: 2000.0, accent: true },
        ];
        let svg = bar_chart("t", "s", "ns", &bars);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains(r#"width="230.0""#) && svg.contains(r#"width="460.0""#), "{svg}");
        assert!(svg.contains("a &lt; b"));
    }
}
