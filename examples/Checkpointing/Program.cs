// SPDX-License-Identifier: MIT
// Activation checkpointing, measured: a deep network of residual MLP blocks trained without checkpointing, with
// every block checkpointed, and with round(sqrt(blocks)) segments, each configuration in a fresh process.
//   dotnet run --project examples/Checkpointing -c Release [-- --plot ratios.png] [--blocks N --width N --batch N ...]
using System;
using System.Collections.Generic;
using System.Linq;
using CustomAutograd.Examples;

ExampleOptions? options = ExampleOptions.Parse(args);
if (options is null)
    return args.Any(a => a is "-h" or "--help") ? 0 : 2;

if (options.Child is { } configuration)
{
    Console.WriteLine(StepMeasurement.Run(options, configuration).ToLine());
    return 0;
}

var results = new List<StepResult>();
foreach (Configuration c in Enum.GetValues<Configuration>())
{
    Console.Error.WriteLine($"measuring '{ResultTable.Describe(c, options)}': memory, then time, each in a fresh process ...");
    StepResult? memory = ChildProcess.Run(options, c, forMemory: true);
    StepResult? time = memory is null ? null : ChildProcess.Run(options, c, forMemory: false);
    if (memory is null || time is null)
        return 1;
    results.Add(memory with { StepSeconds = time.StepSeconds, CpuSeconds = time.CpuSeconds });
}
ResultTable.Write(options, results, Console.Out);
if (options.PlotPath is { } path)
{
    ResultPlot.Save(options, results, path);
    Console.Error.WriteLine($"ratios drawn to {path}");
}
return 0;
