// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using System.Linq;
using ScottPlot;

namespace CustomAutograd.Examples;

/// <summary>Draws peak memory and step time of each configuration, relative to no checkpointing, as grouped bars.</summary>
public static class ResultPlot
{
    /// <summary>Saves the plot as a PNG.</summary>
    /// <param name="o">The sizes (for the title and the names).</param>
    /// <param name="results">One result per configuration, no checkpointing included.</param>
    /// <param name="path">The PNG file to write.</param>
    public static void Save(ExampleOptions o, IReadOnlyList<StepResult> results, string path)
    {
        ArgumentNullException.ThrowIfNull(o);
        ArgumentNullException.ThrowIfNull(results);
        ArgumentException.ThrowIfNullOrEmpty(path);
        StepResult none = results.First(r => r.Configuration == Configuration.None);

        var plot = new Plot();
        var memory = new List<Bar>();
        var time = new List<Bar>();
        var ticks = new List<Tick>();
        for (int i = 0; i < results.Count; i++)
        {
            double center = i * 3 + 1.5;
            memory.Add(new Bar { Position = center - 0.5, Value = (double)results[i].PeakBytes / none.PeakBytes, FillColor = Colors.SteelBlue });
            time.Add(new Bar { Position = center + 0.5, Value = results[i].StepSeconds / none.StepSeconds, FillColor = Colors.DarkOrange });
            ticks.Add(new Tick(center, ResultTable.Describe(results[i].Configuration, o)));
        }
        plot.Add.Bars(memory).LegendText = "peak memory / no checkpointing";
        plot.Add.Bars(time).LegendText = "step time / no checkpointing";
        plot.Add.HorizontalLine(1, 1, Colors.Black.WithOpacity(0.4), LinePattern.Dashed);
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks.ToArray());
        plot.Axes.Margins(bottom: 0);
        plot.ShowLegend(Alignment.UpperRight);
        plot.YLabel("ratio to no checkpointing");
        plot.Title($"Activation checkpointing: {o.Blocks} residual MLP blocks, width {o.Width}, batch {o.Batch} ({o.Device})");
        plot.Grid.MajorLineColor = Colors.Black.WithOpacity(0.15);
        plot.SavePng(path, 900, 500);
    }
}
