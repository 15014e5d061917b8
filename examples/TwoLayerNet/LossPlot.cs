// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using System.Globalization;
using ScottPlot;
using ScottPlot.TickGenerators;

namespace CustomAutograd.Examples;

/// <summary>Writes the loss curve as a PNG with a logarithmic loss axis.</summary>
public static class LossPlot
{
    /// <summary>Saves the plot.</summary>
    /// <param name="losses">The loss of each step (positive).</param>
    /// <param name="path">The PNG file to write.</param>
    /// <param name="title">The plot's title.</param>
    public static void Save(IReadOnlyList<double> losses, string path, string title)
    {
        ArgumentNullException.ThrowIfNull(losses);
        ArgumentException.ThrowIfNullOrEmpty(path);
        var steps = new double[losses.Count];
        var logLoss = new double[losses.Count];
        for (int i = 0; i < losses.Count; i++)
        {
            steps[i] = i + 1;
            logLoss[i] = Math.Log10(Math.Max(losses[i], double.Epsilon));
        }

        var plot = new Plot();
        var line = plot.Add.ScatterLine(steps, logLoss);
        line.LineWidth = 2;
        plot.Title(title);
        plot.XLabel("step");
        plot.YLabel("loss (log scale)");
        plot.Axes.Left.TickGenerator = new NumericAutomatic
        {
            MinorTickGenerator = new LogMinorTickGenerator(),
            IntegerTicksOnly = true,
            LabelFormatter = y => "1e" + y.ToString("0", CultureInfo.InvariantCulture),
        };
        plot.Grid.MajorLineColor = Colors.Black.WithOpacity(0.15);
        plot.SavePng(path, 800, 500);
    }
}
