/**
 * The dashboard's charts: one uPlot line chart per figure, holding the last two minutes of one
 * series, with the latest value beside its title.
 */

import uPlot from "uplot";

/** What one chart shows. */
export interface ChartSpec {
  key: string;
  title: string;
  unit: string;
}

/** Samples kept: two minutes at one per second. */
const KEEP = 120;
const HEIGHT = 140;

export class Chart {
  readonly #spec: ChartSpec;
  readonly #plot: uPlot;
  readonly #last: HTMLElement;
  readonly #times: number[] = [];
  readonly #values: (number | null)[] = [];

  constructor(spec: ChartSpec, into: HTMLElement, format: (value: number | null) => string) {
    this.#spec = spec;
    const figure = document.createElement("figure");
    figure.id = `chart-${spec.key}`;
    figure.setAttribute("role", "img");
    figure.setAttribute("aria-label", `${spec.title}, last two minutes`);
    const caption = document.createElement("figcaption");
    const name = document.createElement("span");
    name.textContent = spec.title;
    this.#last = document.createElement("span");
    this.#last.id = `last-${spec.key}`;
    this.#last.textContent = "–";
    caption.append(name, this.#last);
    const plotBox = document.createElement("div");
    figure.append(plotBox, caption);
    into.append(figure);
    this.#format = format;
    this.#plot = new uPlot(
      {
        width: Math.max(200, plotBox.clientWidth || 360),
        height: HEIGHT,
        legend: { show: false },
        cursor: { show: false },
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max) * 1.1] } },
        axes: [
          { stroke: "#57606a", grid: { stroke: "#eaeef2" }, ticks: { show: false } },
          { stroke: "#57606a", grid: { stroke: "#eaeef2" }, size: 56, values: (_u, ticks) => ticks.map((t) => format(t)) },
        ],
        series: [{}, { label: spec.title, stroke: "#0b5cad", width: 2, spanGaps: false, points: { show: false } }],
      },
      [[], []],
      plotBox,
    );
    new ResizeObserver(() => {
      const width = plotBox.clientWidth;
      if (width > 0 && width !== this.#plot.width) {
        this.#plot.setSize({ width, height: HEIGHT });
      }
    }).observe(plotBox);
  }

  readonly #format: (value: number | null) => string;

  /** Adds the sample taken at `at` (ms since the epoch); null: no value (a gap). */
  push(at: number, value: number | null): void {
    this.#times.push(at / 1000);
    this.#values.push(value);
    if (this.#times.length > KEEP) {
      this.#times.shift();
      this.#values.shift();
    }
    this.#plot.setData([this.#times, this.#values]);
    this.#last.textContent = value === null ? "–" : `${this.#format(value)}${this.#spec.unit}`;
  }
}
