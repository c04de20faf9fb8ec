// The dashboard's time chart: uPlot draws the series the page carries as JSON
// (#chart-data), in the period's time zone. The page's tables need none of this.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

const data = JSON.parse(document.getElementById("chart-data").textContent);
const panel = document.getElementById("chart");

function size() {
  const width = panel.clientWidth;
  return { width, height: Math.round(Math.min(320, Math.max(180, width / 2.5))) };
}

const hourly = data.interval === "hour";
const HOUR = 3600;
const DAY = 24 * HOUR;
// The time axis' labels, 24-hour and year-month-day as the page writes them, in uPlot's
// form: tick spacing, label, then the label where a year, month, day or hour begins.
const timeLabels = [
  [365 * DAY, "{YYYY}", null, null, null, null, null, null, 1],
  [28 * DAY, "{MMM}", "\n{YYYY}", null, null, null, null, null, 1],
  [DAY, "{MM}-{DD}", "\n{YYYY}", null, null, null, null, null, 1],
  [HOUR, "{HH}:00", "\n{YYYY}-{MM}-{DD}", null, "\n{MM}-{DD}", null, null, null, 1],
];
const chart = new uPlot(
  {
    ...size(),
    tzDate: (seconds) => uPlot.tzDate(new Date(seconds * 1000), data.tz),
    scales: { x: { time: true } },
    series: [
      { value: hourly ? "{YYYY}-{MM}-{DD} {HH}:00" : "{YYYY}-{MM}-{DD}" },
      { label: "Events", stroke: "#2563eb", fill: "rgba(37, 99, 235, 0.08)", width: 2 },
      { label: "Visitors", stroke: "#15803d", width: 2 },
    ],
    axes: [{ values: timeLabels }, { size: 60 }],
  },
  [data.times, data.events, data.visitors],
  panel,
);

window.addEventListener("resize", () => chart.setSize(size()));
