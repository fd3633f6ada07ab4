// Nights list: one small uPlot chart per trend (cramps, cramp minutes, awakenings, sleep efficiency).
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("trend-data").textContent);
  const days = data.night.map((d) => Date.parse(d + "T00:00:00Z") / 1000);
  for (const el of document.querySelectorAll(".chart")) {
    const key = el.dataset.series;
    new uPlot({
      title: el.dataset.label, width: Math.max(260, el.clientWidth || 300), height: 150,
      // Half a day either side of the first and last night, so that one night (or a year) sits
      // inside a sane axis; counts start at 0.
      scales: {x: {time: true, range: (u, min, max) => [min - 43200, max + 43200]},
               y: {range: (u, min, max) => [Math.min(0, min), Math.max(1, max)]}},
      legend: {show: false}, tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
      series: [{}, {stroke: "#b03030", width: 2, points: {show: true, size: 5}, spanGaps: true}],
    }, [days, data[key]], el);
  }
})();
