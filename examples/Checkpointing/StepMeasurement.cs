// SPDX-License-Identifier: MIT
using System;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace CustomAutograd.Examples;

/// <summary>What one configuration measured (in its own process).</summary>
/// <param name="Configuration">The configuration.</param>
/// <param name="PeakBytes">The largest peak memory over the pre-step memory of the measured steps.</param>
/// <param name="PreStepBytes">The memory before the first measured step (weights, gradients, data, runtime).</param>
/// <param name="StepSeconds">The median wall-clock time of the measured steps.</param>
/// <param name="CpuSeconds">The median CPU time (all threads, user and system) of the measured steps. With one
/// libtorch thread it equals the wall-clock time on an idle machine, and it does not grow when other processes take
/// the cores, so on a shared machine its ratios are the steadier ones.</param>
/// <param name="Loss">The loss of the last step (the same for every configuration: checkpointing changes no value).</param>
/// <param name="Threads">libtorch's intra-op threads in the child.</param>
public sealed record StepResult(Configuration Configuration, long PeakBytes, long PreStepBytes, double StepSeconds, double CpuSeconds,
                                double Loss, int Threads)
{
    private const string Tag = "RESULT";

    /// <summary>The line a child prints for its parent.</summary>
    /// <returns>The line.</returns>
    public string ToLine() => string.Create(CultureInfo.InvariantCulture,
        $"{Tag} {Configuration} {PeakBytes} {PreStepBytes} {StepSeconds:R} {CpuSeconds:R} {Loss:R} {Threads}");

    /// <summary>Reads a child's line back.</summary>
    /// <param name="line">A line of the child's output.</param>
    /// <returns>The result, or null when the line is not one.</returns>
    public static StepResult? TryParse(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        string[] f = line.Split(' ');
        if (f.Length != 8 || f[0] != Tag || !Enum.TryParse(f[1], out Configuration c))
            return null;
        CultureInfo inv = CultureInfo.InvariantCulture;
        return new StepResult(c, long.Parse(f[2], inv), long.Parse(f[3], inv), double.Parse(f[4], inv), double.Parse(f[5], inv),
                              double.Parse(f[6], inv), int.Parse(f[7], inv));
    }
}

/// <summary>
/// The child side: builds the model in a configuration, trains it for a few steps, and measures each step's peak
/// memory over the memory just before it (one configuration per process), or the time of every configuration's
/// steps, taken in turn (all in one process).
/// </summary>
/// <remarks>
/// CPU memory is the process's resident set: the peak (VmHWM in /proc/self/status) after resetting it through
/// /proc/self/clear_refs, minus VmRSS right before the step. For the memory the parent sets
/// MALLOC_MMAP_THRESHOLD_=131072, so glibc serves every block of 128 KiB or more with its own mapping and returns it
/// when freed; without it glibc raises the threshold after the first large frees and the peak measures heap
/// fragmentation. The time comes from another child with the default allocator (see <see cref="ChildProcess"/>).
/// CUDA memory is the process's GPU memory as nvidia-smi reports it: libtorch's caching allocator keeps what it
/// reserved at the step's peak, so the figure after the steps minus the one before is the peak the steps reserved
/// (TorchSharp 0.107 exposes no CUDA memory statistics).
/// </remarks>
public static class StepMeasurement
{
    private const double LearningRate = 1e-3;

    /// <summary>Measures the memory of one configuration's steps.</summary>
    /// <param name="o">Sizes, steps and device.</param>
    /// <param name="configuration">What to checkpoint.</param>
    /// <returns>The result (its times are those of the same steps, measured with the memory probe's overhead).</returns>
    public static StepResult Run(ExampleOptions o, Configuration configuration)
    {
        ArgumentNullException.ThrowIfNull(o);
        using var trainer = new Trainer(o, configuration);
        for (int i = 0; i < o.Warmup; i++)
            trainer.Step();

        var memory = trainer.Cuda ? (IMemoryProbe)new NvidiaSmiProbe() : new ResidentSetProbe();
        long pre = 0, peak = 0;
        var times = new StepTimes(o.Steps);
        for (int i = 0; i < o.Steps; i++)
        {
            long before = memory.Before();
            times.Measure(i, trainer);
            peak = Math.Max(peak, memory.PeakSince() - before);
            if (i == 0)
                pre = before;
        }
        return new StepResult(configuration, peak, pre, times.MedianSeconds, times.MedianCpuSeconds, trainer.Loss,
                              torch.get_num_threads());
    }

    /// <summary>Measures the step time of every configuration in this one process: one step of each in turn, for
    /// <see cref="ExampleOptions.Steps"/> rounds, so that a process-wide change of speed affects all alike.</summary>
    /// <param name="o">Sizes, steps and device.</param>
    /// <returns>One result per configuration, without memory figures.</returns>
    public static StepResult[] RunInTurn(ExampleOptions o)
    {
        ArgumentNullException.ThrowIfNull(o);
        Configuration[] configurations = Enum.GetValues<Configuration>();
        var trainers = new Trainer[configurations.Length];
        try
        {
            for (int k = 0; k < configurations.Length; k++)
                trainers[k] = new Trainer(o, configurations[k]);
            foreach (Trainer t in trainers)
            {
                for (int i = 0; i < o.Warmup; i++)
                    t.Step();
            }
            StepTimes[] times = configurations.Select(_ => new StepTimes(o.Steps)).ToArray();
            for (int i = 0; i < o.Steps; i++)
            {
                for (int k = 0; k < trainers.Length; k++)
                    times[k].Measure(i, trainers[k]);
            }
            return configurations.Select((c, k) => new StepResult(c, 0, 0, times[k].MedianSeconds, times[k].MedianCpuSeconds,
                                                                   trainers[k].Loss, torch.get_num_threads())).ToArray();
        }
        finally
        {
            foreach (Trainer? t in trainers)
                t?.Dispose();
        }
    }

    // Wall-clock and CPU time of each measured step, with their medians.
    private sealed class StepTimes(int steps)
    {
        private readonly double[] _seconds = new double[steps];
        private readonly double[] _cpuSeconds = new double[steps];

        internal double MedianSeconds => Median(_seconds);

        internal double MedianCpuSeconds => Median(_cpuSeconds);

        internal void Measure(int i, Trainer trainer)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            using Process process = Process.GetCurrentProcess();
            TimeSpan cpu = process.TotalProcessorTime;
            var clock = Stopwatch.StartNew();
            trainer.Step();
            _seconds[i] = clock.Elapsed.TotalSeconds;
            process.Refresh();
            _cpuSeconds[i] = (process.TotalProcessorTime - cpu).TotalSeconds;
        }

        private static double Median(double[] values)
        {
            double[] sorted = (double[])values.Clone();
            Array.Sort(sorted);
            return sorted[sorted.Length / 2];
        }
    }

    // One configuration's model (seeded, so every configuration starts from the same weights), data and optimizer.
    private sealed class Trainer : IDisposable
    {
        private readonly Sequential _model;
        private readonly Func<Tensor, Tensor> _forward;
        private readonly Tensor _input, _target;
        private readonly SGD _optimizer;
        private readonly Device _device;

        internal Trainer(ExampleOptions o, Configuration configuration)
        {
            if (o.Threads is { } threads)
                torch.set_num_threads(threads);
            Cuda = o.Device == "cuda";
            if (Cuda)
                torch.InitializeDeviceType(DeviceType.CUDA);
            _device = Cuda ? CUDA : CPU;

            torch.manual_seed(o.Seed);
            ResidualBlock[] blocks = Enumerable.Range(0, o.Blocks).Select(_ => new ResidualBlock(o.Width, _device)).ToArray();
            _model = nn.Sequential(blocks);
            // The same blocks, each wrapped; not disposed separately (disposing the model disposes the blocks).
            Sequential wrapped = nn.Sequential(blocks.Select(b => new CheckpointModule(b)));
            _forward = configuration switch
            {
                Configuration.None => _model.call,
                Configuration.EveryBlock => wrapped.call,
                Configuration.SqrtSegments => x => Checkpoint.Sequential(_model, o.Segments, x),
                _ => throw new ArgumentOutOfRangeException(nameof(configuration)),
            };
            _input = torch.randn(o.Batch, o.Width, device: _device);
            _target = torch.randn(o.Batch, o.Width, device: _device);
            _optimizer = optim.SGD(_model.parameters(), LearningRate);
        }

        internal bool Cuda { get; }

        internal double Loss { get; private set; }

        internal void Step()
        {
            using DisposeScope scope = NewDisposeScope();
            _optimizer.zero_grad();
            Tensor loss = nn.functional.mse_loss(_forward(_input), _target);
            loss.backward();
            _optimizer.step();
            if (_device.type == DeviceType.CUDA)
                torch.cuda.synchronize();
            Loss = loss.item<float>();
        }

        public void Dispose()
        {
            _optimizer.Dispose();
            _input.Dispose();
            _target.Dispose();
            _model.Dispose();
        }
    }

    private interface IMemoryProbe
    {
        /// <summary>Starts a measurement and returns the memory in use now, in bytes.</summary>
        long Before();

        /// <summary>The peak since <see cref="Before"/>, in bytes.</summary>
        long PeakSince();
    }

    private sealed class ResidentSetProbe : IMemoryProbe
    {
        public long Before()
        {
            File.WriteAllText("/proc/self/clear_refs", "5");   // resets VmHWM to the current resident set
            return Status("VmRSS:");
        }

        public long PeakSince() => Status("VmHWM:");

        private static long Status(string key)
        {
            foreach (string line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith(key, StringComparison.Ordinal))
                    return long.Parse(line[key.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
            }
            throw new InvalidOperationException($"/proc/self/status has no {key} line.");
        }
    }

    private sealed class NvidiaSmiProbe : IMemoryProbe
    {
        public long Before() => Used();

        public long PeakSince() => Used();

        private static long Used()
        {
            int pid = Environment.ProcessId;
            var start = new ProcessStartInfo("nvidia-smi", "--query-compute-apps=pid,used_memory --format=csv,noheader,nounits")
            {
                RedirectStandardOutput = true,
                UseShellExecute = false,
            };
            using Process smi = Process.Start(start) ?? throw new InvalidOperationException("nvidia-smi did not start.");
            string output = smi.StandardOutput.ReadToEnd();
            smi.WaitForExit();
            foreach (string line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                string[] f = line.Split(',', StringSplitOptions.TrimEntries);
                if (f.Length == 2 && int.TryParse(f[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out int p) && p == pid)
                    return long.Parse(f[1], CultureInfo.InvariantCulture) * 1024 * 1024;
            }
            throw new InvalidOperationException($"nvidia-smi lists no GPU memory for process {pid}.");
        }
    }
}
