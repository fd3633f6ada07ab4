// Nights list: one small uPlot chart per trend (cramps, cramp minutes, awakenings, sleep efficiency).
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("trend-data").textContent);
  const days = data.night.map((d) => Date.parse(d + "T00:00:00Z") / 1000);
  // From the nights themselves: with one night uPlot hands the range callback a span of 1000 days.
  const first = Math.min(...days), last = Math.max(...days);
  window.ncTrends = [];  // the charts, for tests and the console
  for (const el of document.querySelectorAll(".chart")) {
    const key = el.dataset.series;
    window.ncTrends.push(new uPlot({
      title: el.dataset.label, width: Math.max(260, el.clientWidth || 300), height: 150,
      // Half a day either side of the first and last night, so that one night (or a year) sits
      // inside a sane axis; counts start at 0.
      scales: {x: {time: true, range: () => [first - 43200, last + 43200]},
               y: {range: (u, min, max) => [Math.min(0, min), Math.max(1, max)]}},
      legend: {show: false}, tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
      series: [{}, {stroke: "#b03030", width: 2, points: {show: true, size: 5}, spanGaps: true}],
    }, [days, data[key]], el));
  }
})();
