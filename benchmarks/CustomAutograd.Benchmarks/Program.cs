// SPDX-License-Identifier: MIT
// The benchmarks of the issues "Performance" and "Performance II".
//   dotnet run -c Release --project benchmarks/CustomAutograd.Benchmarks -- [--quick] [--device cpu|cuda] [--filter <pattern>...] [other BenchmarkDotNet options]
//   dotnet run -c Release --project benchmarks/CustomAutograd.Benchmarks -- --thread-time ROUNDS [--batch N] [--filter <pattern>...]
// Without --filter every group of the device runs. --quick: few, short iterations (a smoke run, numbers are rough).
// --thread-time: no BenchmarkDotNet; each row timed by its thread's CPU time, rows taking turns (busy machines).
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using CustomAutograd.Benchmarks;
using Perfolizer.Horology;
using TorchSharp;

bool quick = false;
string device = "cpu";
int threadTimeRounds = 0, threadTimeBatch = 0;
var rest = new List<string>();
for (int i = 0; i < args.Length; i++)
{
    if (args[i] == "--quick")
        quick = true;
    else if (args[i] == "--thread-time" && i + 1 < args.Length && int.TryParse(args[i + 1], out int rounds) && rounds > 0)
    {
        threadTimeRounds = rounds;
        i++;
    }
    else if (args[i] == "--batch" && i + 1 < args.Length && int.TryParse(args[i + 1], out int batch) && batch > 0)
    {
        threadTimeBatch = batch;
        i++;
    }
    else if (args[i] == "--device" && i + 1 < args.Length)
        device = args[++i];
    else if (args[i].StartsWith("--device=", StringComparison.Ordinal))
        device = args[i]["--device=".Length..];
    else
        rest.Add(args[i]);
}
if (device is not ("cpu" or "cuda"))
{
    Console.Error.WriteLine($"--device must be cpu or cuda, not '{device}'.");
    return 2;
}
bool cuda = device == "cuda";
try
{
    Setup.UseDevice(cuda);
}
catch (Exception e) when (cuda)
{
    Console.Error.WriteLine("--device cuda: TorchSharp could not initialise CUDA: " + e.Message);
    return 2;
}
if (cuda && !torch.cuda.is_available())
{
    Console.Error.WriteLine("--device cuda: TorchSharp sees no CUDA device (torch.cuda.is_available() is false).");
    return 2;
}

// The groups of each device: on CUDA the identity (fixed cost), the ReLU on 16M elements and the real model.
string[] groups = cuda
    ? new[] { nameof(IdentityBenchmarks), nameof(Relu16MBenchmarks), nameof(MlpBenchmarks) }
    : new[] { nameof(IdentityBenchmarks), nameof(Relu16Benchmarks), nameof(Relu1MBenchmarks), nameof(TwoLayerNetBenchmarks), nameof(ChainBenchmarks), nameof(MlpBenchmarks),
        nameof(CheckpointBenchmarks) };
if (!rest.Any(a => a is "--filter" or "-f" || a.StartsWith("--filter=", StringComparison.Ordinal)))
{
    rest.Add("--filter");
    rest.AddRange(groups.Select(g => $"*.{g}.*"));
}

if (threadTimeRounds > 0)
{
    if (cuda)
    {
        Console.Error.WriteLine("--thread-time measures the CPU time of the calling thread: CPU runs only.");
        return 2;
    }
    // The --filter patterns: globs over Namespace.Class.Method, or Namespace.Class.Method(Param=Value) for a class
    // with parameters (e.g. '*MlpBenchmarks.ByHand(Reset=None)').
    int at = rest.FindIndex(a => a is "--filter" or "-f");
    var patterns = rest.Skip(at + 1).TakeWhile(a => !a.StartsWith('-'))
                       .Select(p => new Regex("^" + Regex.Escape(p).Replace("\\*", ".*", StringComparison.Ordinal) + "(\\(.*\\))?$")).ToList();
    var types = groups.Select(g => typeof(Checks).Assembly.GetType("CustomAutograd.Benchmarks." + g)!).ToList();
    Console.WriteLine($"Device: cpu; thread CPU time, {threadTimeRounds} rounds per row");
    Checks.Run(Console.Out);
    string table = GoalReport.Build(ThreadTimeRunner.Run(types, patterns, threadTimeRounds, threadTimeBatch, Console.Out), cuda: false, torch.cuda.is_available());
    GoalReport.Write(table, Console.Out, Path.Combine(AppContext.BaseDirectory, "BenchmarkDotNet.Artifacts"), "thread CPU time per operation");
    return 0;
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

Console.WriteLine($"Device: {(cuda ? "cuda:0" : "cpu")}");
Checks.Run(Console.Out);
Checks.WarmUp(TimeSpan.FromSeconds(quick ? 1 : 10), Console.Out);

IEnumerable<Summary> summaries = BenchmarkSwitcher.FromAssembly(typeof(Checks).Assembly).Run(rest.ToArray(), config).ToList();
GoalReport.Write(GoalReport.Build(summaries, cuda, torch.cuda.is_available()), Console.Out, artifacts, "medians and minima of the measured iterations");
return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;
