// SPDX-License-Identifier: MIT
// Benchmarks of the issue "Performance: near-zero cost per custom-function call, measured side by side".
//   dotnet run -c Release --project benchmarks/CustomAutograd.Benchmarks -- [--quick] [--filter <pattern>] [other BenchmarkDotNet options]
// Without --filter every benchmark runs. --quick: few, short iterations (a smoke run, numbers are rough).
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using CustomAutograd.Benchmarks;
using Perfolizer.Horology;

bool quick = args.Contains("--quick");
var rest = args.Where(a => a != "--quick").ToList();
if (!rest.Any(a => a is "--filter" or "-f" || a.StartsWith("--filter=", StringComparison.Ordinal)))
{
    rest.Add("--filter");
    rest.Add("*");
}

// In process: the benchmarks run in this already-built output, whose libLibTorchSharp.so the build patched
// for older libstdc++ (a generated per-run project in a temp folder would not get that step).
Job job = Job.Default.WithToolchain(InProcessEmitToolchain.Instance);
job = quick
    ? job.WithId("Quick").WithWarmupCount(1).WithIterationCount(3).WithIterationTime(TimeInterval.FromMilliseconds(100))
    : job.WithId("Full").WithWarmupCount(5).WithIterationCount(25).WithIterationTime(TimeInterval.FromMilliseconds(250));

string artifacts = Path.Combine(AppContext.BaseDirectory, "BenchmarkDotNet.Artifacts");
IConfig config = ManualConfig.Create(DefaultConfig.Instance)
    .AddJob(job)
    .AddColumn(StatisticColumn.Median)
    .WithArtifactsPath(artifacts);

Checks.Run(Console.Out);
Checks.WarmUp(TimeSpan.FromSeconds(quick ? 1 : 10), Console.Out);

IEnumerable<Summary> summaries = BenchmarkSwitcher.FromAssembly(typeof(Checks).Assembly).Run(rest.ToArray(), config).ToList();
GoalReport.Write(GoalReport.Build(summaries), Console.Out, artifacts);
return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;
