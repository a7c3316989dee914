"""Altair chart builders for the dashboard (pure: data frames in, charts out).

Colours come from the method registry only (`methods.color_of`, `TARGET_COLOR`), so a method has the
same colour on every page and in every spec, whatever subset of methods a chart shows.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from lldmix_core.methods import TARGET_COLOR, baseline_method, color_of, ordered

UNITS = {"bits/byte": "bits_per_byte", "nats/text": "nats_per_text"}
BASE_COLOR = "#555555"  # the base model (start of every trajectory) and other stored models
OTHER_ROLES = {"target": TARGET_COLOR, "base": BASE_COLOR, "other model": "#aaaaaa"}


def method_scale(present, extra: dict[str, str] | None = None) -> alt.Scale:
    """The one colour scale: the methods `present` (in the registry's display order), each with its
    fixed registry colour, after `extra` named series (e.g. target, base) with theirs. Each name's
    colour comes from the registry, not from its position, so it is the same on every chart."""
    extra = {k: v for k, v in (extra or {}).items() if k in set(present)}
    names = ordered(n for n in set(present) if n not in extra)
    return alt.Scale(domain=list(extra) + names, range=list(extra.values()) + [color_of(n) for n in names])


def _legend(title: str) -> alt.Legend:
    return alt.Legend(title=title, symbolOpacity=1.0, symbolStrokeWidth=3, labelLimit=400)


def kl_vs_step(df: pd.DataFrame, unit: str) -> alt.Chart:
    """KL to target against training step (log-scaled step + 1): a thin dashed line per seed, and per
    method (`label`) the mean over seeds with a ±1 sd band. df: one row per (run, step) with method,
    label, seed and the KL columns."""
    col = UNITS[unit]
    d = df.assign(step_plus_1=df["step"] + 1, seed=df["seed"].astype(str))
    band = (d.groupby(["method", "label", "step_plus_1"])[col].agg(["mean", "std", "count"]).reset_index())
    band["sd"] = band["std"].fillna(0.0)
    band["lo"] = (band["mean"] - band["sd"]).clip(lower=band["mean"] * 1e-3)  # a log axis: keep the band positive
    band["hi"] = band["mean"] + band["sd"]
    x = alt.X("step_plus_1:Q", scale=alt.Scale(type="log", nice=False), title="training step + 1 (log scale)")
    color = alt.Color("method:N", scale=method_scale(d["method"]), legend=_legend("method"))
    seeds = alt.Chart(d).mark_line(point=alt.OverlayMarkDef(size=30), opacity=0.45, strokeWidth=1.2).encode(
        x=x, y=alt.Y(f"{col}:Q", scale=alt.Scale(type="log"), title=f"KL to target ({unit})"),
        color=color, strokeDash=alt.StrokeDash("seed:N", legend=_legend("seed (dash)")), detail="run:N",
        tooltip=["run", "label", "seed", "step", alt.Tooltip(f"{col}:Q", format=".4f", title=f"KL ({unit})")])
    area = alt.Chart(band).mark_area(opacity=0.15).encode(x=x, y="lo:Q", y2="hi:Q", color=color, detail="label:N")
    mean = alt.Chart(band).mark_line(strokeWidth=3).encode(
        x=x, y=alt.Y("mean:Q", scale=alt.Scale(type="log")), color=color, detail="label:N",
        tooltip=["label", alt.Tooltip("step_plus_1:Q", title="step + 1"), alt.Tooltip("count:Q", title="seeds"),
                 alt.Tooltip("mean:Q", format=".4f", title=f"mean KL ({unit})"),
                 alt.Tooltip("std:Q", format=".4f", title=f"sd ({unit})")])
    return (area + seeds + mean).properties(height=380)


def grouped_bars(df: pd.DataFrame, group: str, title: str, *, by_method: str | None = None) -> alt.Chart:
    """Domain weights side by side: x = domain, y = weight, one bar per `group` value. With `by_method`
    (a column holding registry method names) bars take the method's fixed colour."""
    # "truth" (a target's training weights) takes the target's colour
    color = (alt.Color(f"{by_method}:N", scale=method_scale(df[by_method], {"truth": TARGET_COLOR}),
                       legend=_legend("method")) if by_method
             else alt.Color(f"{group}:N", legend=_legend(group)))
    return alt.Chart(df).mark_bar().encode(
        x=alt.X("domain:N", title="domain"),
        xOffset=alt.XOffset(f"{group}:N"),
        y=alt.Y("weight:Q", title=title),
        color=color,
        tooltip=["domain", group, alt.Tooltip("weight:Q", format=".4f")],
    ).properties(height=300)


def heatmap(df: pd.DataFrame, x: str, y: str, value: str, title: str, fmt: str = ".3f") -> alt.Chart:
    return alt.Chart(df).mark_rect().encode(
        x=alt.X(f"{x}:O", title=x),
        y=alt.Y(f"{y}:O", title=y),
        color=alt.Color(f"{value}:Q", title=title),
        tooltip=[x, y, alt.Tooltip(f"{value}:Q", format=fmt)],
    ).properties(height=320)


ROLE_SHAPES = {"target": "diamond", "base": "cross", "first checkpoint": "square", "checkpoint": "circle",
               "final checkpoint": "triangle-up", "other model": "triangle-down"}
ROLE_SIZES = {"target": 420, "base": 300, "first checkpoint": 170, "checkpoint": 90, "final checkpoint": 240,
              "other model": 160}


def model_map(points: pd.DataFrame) -> alt.Chart:
    """Models as points in 2-D, training trajectories (a run's checkpoints by step) as paths.

    points: one row per model with x, y, name, run, seed, step_label, step, role (ROLE_SHAPES keys),
    series (a method name, "target", "base" or "other model") and kl_to_target (nats/text).
    Colour = series (the registry's method colours), shape and size = role, the target labelled."""
    color = alt.Color("series:N", scale=method_scale(points["series"], OTHER_ROLES), legend=_legend("method / model"))
    tooltip = [alt.Tooltip("name:N", title="model"), alt.Tooltip("run:N", title="run"),
               alt.Tooltip("seed:N", title="seed"), alt.Tooltip("step_label:N", title="step"),
               alt.Tooltip("kl_to_target:Q", format=".4f", title="KL to target (nats/text)")]
    xs = alt.X("x:Q", title="map axis 1")
    ys = alt.Y("y:Q", title="map axis 2")
    paths = alt.Chart(points[points["run"] != ""]).mark_line(opacity=0.6, strokeWidth=2).encode(
        x=xs, y=ys, color=color, order="step:Q", detail="run:N", strokeDash=alt.StrokeDash("seed:N", legend=_legend("seed (dash)")),
        tooltip=tooltip)
    roles = [r for r in ROLE_SHAPES if r in set(points["role"])]
    dots = alt.Chart(points).mark_point(filled=True, opacity=0.95, stroke="white", strokeWidth=0.8).encode(
        x=xs, y=ys, color=color,
        shape=alt.Shape("role:N", scale=alt.Scale(domain=roles, range=[ROLE_SHAPES[r] for r in roles]), legend=_legend("role")),
        size=alt.Size("role:N", scale=alt.Scale(domain=roles, range=[ROLE_SIZES[r] for r in roles]), legend=_legend("role")),
        tooltip=tooltip)
    named = points[points["role"].isin(["target", "base"])]
    right = named["x"] > (points["x"].min() + points["x"].max()) / 2  # labels grow toward the plot's centre
    labels = [alt.Chart(part).mark_text(align=align, dx=dx, dy=-14, fontSize=13, fontWeight="bold").encode(
        x=xs, y=ys, text="map_label:N", color=alt.value(TARGET_COLOR))
        for part, align, dx in ((named[~right], "left", 12), (named[right], "right", -12))]
    return alt.layer(paths, dots, *labels).properties(height=520).resolve_scale(strokeDash="independent")


def recovery_ratios(df: pd.DataFrame, order: list[str]) -> alt.Chart:
    """The recovery ratio of every (target, seed) pair per estimator (log x; a rule at 1 = uniform),
    with each estimator's median as a tick. df: estimator, ratio, pair."""
    base = alt.Chart(df).encode(y=alt.Y("estimator:N", sort=order, title=None))
    points = base.mark_circle(size=40, opacity=0.5).encode(
        x=alt.X("ratio:Q", scale=alt.Scale(type="log"), title="KL(estimate ‖ truth) / KL(uniform ‖ truth)"),
        tooltip=["estimator", "pair", alt.Tooltip("ratio:Q", format=".3f")])
    medians = base.mark_tick(thickness=3, size=18, color="#d62728").encode(x="median(ratio):Q")
    one = alt.Chart(pd.DataFrame({"x": [1.0]})).mark_rule(strokeDash=[4, 4], color=BASE_COLOR).encode(x="x:Q")
    return (points + medians + one).properties(height=max(200, 22 * len(order)))


def mixture_bars(df: pd.DataFrame, series: list[str]) -> alt.Chart:
    """Truth, uniform and chosen estimates as grouped bars per domain. df: series, domain, weight."""
    d = df[df.series.isin(series)]
    colors = {"truth": TARGET_COLOR, "uniform": color_of(baseline_method())}
    rest = [s for s in series if s not in colors]
    palette = ["#d62728", "#1f77b4", "#9467bd", "#2ca02c", "#ff7f0e", "#8c564b"]
    scale = alt.Scale(domain=[s for s in series if s in colors] + rest,
                      range=[colors[s] for s in series if s in colors] + palette[: len(rest)])
    return alt.Chart(d).mark_bar().encode(
        x=alt.X("domain:N", title=None), xOffset=alt.XOffset("series:N", sort=series),
        y=alt.Y("weight:Q", title="domain weight"), color=alt.Color("series:N", scale=scale, legend=_legend("mixture")),
        tooltip=["series", "domain", alt.Tooltip("weight:Q", format=".3f")]).properties(height=280)


def pass2_differences(df: pd.DataFrame) -> alt.Chart:
    """Pass 2: each method's final sampled KL minus uniform's on the same draws, per (cell, truth): the
    mean over seeds with its 95 % interval over seeds as a bar, and a rule at 0 (left of it: closer to the
    target than uniform). df: case, method, mean, lo, hi (bits/byte; lo/hi nan for one seed)."""
    color = alt.Color("method:N", scale=method_scale(sorted(df.method.unique())), legend=_legend("method"))
    y = alt.Y("case:N", title=None, sort=sorted(df.case.unique()))
    offset = alt.YOffset("method:N")
    bars = alt.Chart(df.dropna(subset=["lo", "hi"])).mark_rule().encode(
        x=alt.X("lo:Q", title="sampled KL − uniform's (bits/byte, paired; mean and 95 % interval over seeds)"),
        x2="hi:Q", y=y, yOffset=offset, color=color)
    points = alt.Chart(df).mark_circle(size=60).encode(
        x="mean:Q", y=y, yOffset=offset, color=color,
        tooltip=["case", "method", alt.Tooltip("mean:Q", format="+.4f"), alt.Tooltip("lo:Q", format="+.4f"),
                 alt.Tooltip("hi:Q", format="+.4f")])
    zero = alt.Chart(pd.DataFrame({"x": [0.0]})).mark_rule(strokeDash=[4, 4], color=BASE_COLOR).encode(x="x:Q")
    return (bars + points + zero).properties(height=max(200, 30 * df.case.nunique()))


def headroom_captured(df: pd.DataFrame) -> alt.Chart:
    """Headroom captured per method: a point at the ratio, its 95 % interval as a bar (clipped to
    [−2, 3] for drawing; unbounded intervals drawn to the clip), rules at 0 (uniform) and 1 (the oracle,
    a reference). df: method, captured, lo, hi."""
    d = df.assign(lo=df["lo"].clip(-2, 3), hi=df["hi"].clip(-2, 3))
    color = alt.Color("method:N", scale=method_scale(sorted(d.method.unique())), legend=_legend("method"))
    y = alt.Y("method:N", title=None)
    bars = alt.Chart(d.dropna(subset=["lo", "hi"])).mark_rule().encode(
        x=alt.X("lo:Q", title="headroom captured (0 = uniform, 1 = oracle; 95 % over seeds)"), x2="hi:Q", y=y,
        color=color)
    points = alt.Chart(d).mark_circle(size=70).encode(x="captured:Q", y=y, color=color,
                                                        tooltip=["method", alt.Tooltip("captured:Q", format=".2f")])
    refs = alt.Chart(pd.DataFrame({"x": [0.0, 1.0], "reference": ["uniform", "oracle (reference)"]})).mark_rule(
        strokeDash=[4, 4], color=BASE_COLOR).encode(x="x:Q", tooltip=["reference"])
    return (bars + points + refs).properties(height=max(120, 40 * d.method.nunique()))


def ladder_grid(df: pd.DataFrame) -> alt.Chart:
    """The headroom ladder: H / noise floor per (size, budget) as a heat map, one panel per target kind and
    truth, the value written in each cell; a ring marks H's whole interval above 3 × floor.
    df: size, n_params, steps, target, truth, h_over_floor, over_3_floors."""
    d = df.dropna(subset=["h_over_floor"]).assign(panel=lambda x: x.target + " · " + x.truth)
    sizes = [s for _, s in sorted(set(zip(d.n_params, d["size"])))]
    base = alt.Chart(d).encode(x=alt.X("steps:O", title="base budget (steps)"),
                               y=alt.Y("size:O", sort=sizes[::-1], title="model (layers × width)"))
    heat = base.mark_rect().encode(
        color=alt.Color("h_over_floor:Q", title="H / floor", scale=alt.Scale(scheme="blues", domainMin=0)),
        tooltip=["target", "truth", "size", "steps", alt.Tooltip("h:Q", format="+.4f", title="H (bits/byte)"),
                 alt.Tooltip("floor:Q", format=".4f", title="floor (bits/byte)"),
                 alt.Tooltip("h_over_floor:Q", format=".2f")])
    text = base.mark_text(fontSize=13).encode(text=alt.Text("h_over_floor:Q", format=".2f"))
    ring = base.transform_filter("datum.over_3_floors").mark_point(shape="square", size=1400, filled=False,
                                                                    color="#d62728", strokeWidth=2)
    return (heat + text + ring).properties(width=220, height=150).facet(facet=alt.Facet("panel:N", title=None), columns=2)
