// SPDX-License-Identifier: MIT
using System;
using System.Globalization;
using System.IO;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Benchmarks;

/// <summary>
/// Runs before any benchmark: TorchSharp must load (on Debian 12 only the build output's patched
/// libLibTorchSharp.so does), and every function under test must give the built-in op's gradient, so that
/// the rows compare equal work and TorchSharp's Function never meets a failing backward.
/// </summary>
internal static class Checks
{
    public static void Run(TextWriter output)
    {
        torch.set_num_threads(1);
        using DisposeScope scope = NewDisposeScope();
        Tensor x = randn(new long[] { 4, 5 }, dtype: ScalarType.Float32, device: Setup.Device, requires_grad: true);

        Tensor expected = Grad(x, static t => t.clone());
        Expect("CustomAutograd identity", expected, Grad(x, static t => Functions.Identity.Apply(t)));
        Expect("TorchSharp identity", expected, Grad(x, Functions.TorchSharpIdentity));

        expected = Grad(x, static t => t.relu());
        Expect("CustomAutograd ReLU", expected, Grad(x, static t => Functions.Relu.Apply(t)));
        Expect("TorchSharp ReLU", expected, Grad(x, Functions.TorchSharpRelu));
        Expect("CustomAutograd fast ReLU", expected, Grad(x, static t => Functions.FastRelu.Apply(t)));

        CheckLinear();
        CheckMlp();

        expected = Grad(x, static t => t.tanh().exp());
        Expect("checkpointed segment", expected, Grad(x, static t => Checkpoint.Run(static h => h.tanh().exp(), t)));

        Tensor chained = Grad(x, static t =>
        {
            for (int i = 0; i < 100; i++)
                t = i % 2 == 0 ? Functions.Identity.Apply(t) : Functions.TorchSharpIdentity(t);
            return t;
        });
        Expect("chain of identities", Grad(x, static t => t.clone()), chained);

        output.WriteLine($"TorchSharp {typeof(torch).Assembly.GetName().Version} loaded; gradients of all functions under test checked.");
    }

    /// <summary>
    /// Runs every implementation's small cases, round after round, for <paramref name="duration"/> before
    /// BenchmarkDotNet starts. BenchmarkDotNet warms each benchmark up on its own, but in this in-process run the
    /// first benchmark of the process sometimes ran several seconds in a slower state (methods still being
    /// recompiled by the tiered JIT, a young GC heap), which made that one row, always a baseline, look slow.
    /// All rows get the same warm-up, so no row is favoured.
    /// </summary>
    public static void WarmUp(TimeSpan duration, TextWriter output)
    {
        torch.set_num_threads(1);
        Tensor x = Setup.Leaf(16);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        int rounds = 0;
        while (clock.Elapsed < duration)
        {
            for (int i = 0; i < 100; i++)
            {
                Step(x, static t => t.clone());
                Step(x, static t => Functions.Identity.Apply(t));
                Step(x, Functions.TorchSharpIdentity);
                Step(x, static t => t.relu());
                Step(x, static t => Functions.Relu.Apply(t));
                Step(x, Functions.TorchSharpRelu);
            }
            Step(x, static t => Chain(t, static h => h.clone()));
            Step(x, static t => Chain(t, static h => Functions.Identity.Apply(h)));
            Step(x, static t => Chain(t, Functions.TorchSharpIdentity));
            rounds++;
        }
        x.Dispose();
        output.WriteLine($"Warmed up for {clock.Elapsed.TotalSeconds:F1} s ({rounds} rounds of every small case).");
    }

    private static void Step(Tensor x, Func<Tensor, Tensor> f)
    {
        using DisposeScope scope = NewDisposeScope();
        f(x).sum().backward();
        x.grad!.zero_();
    }

    private static Tensor Chain(Tensor x, Func<Tensor, Tensor> f)
    {
        for (int i = 0; i < 1_000; i++)
            x = f(x);
        return x;
    }

    private static Tensor Grad(Tensor x, Func<Tensor, Tensor> f)
    {
        x.grad?.zero_();
        (f(x) * arange(x.numel(), dtype: x.dtype, device: x.device).reshape(x.shape)).sum().backward();
        return x.grad!.clone();
    }

    /// <summary>The three Linear functions give the gradients of libtorch's <c>linear</c>, for the input, weight and bias, with and without bias.</summary>
    private static void CheckLinear()
    {
        var linears = new (string Name, Func<Tensor, Tensor, Tensor?, Tensor> Apply)[]
        {
            ("CustomAutograd Linear", static (x, w, b) => Functions.Linear.Apply(x, w, b)),
            ("CustomAutograd fast Linear", static (x, w, b) => Functions.FastLinear.Apply(x, w, b)),
            ("TorchSharp Linear", Functions.TorchSharpLinear),
        };
        foreach (bool withBias in new[] { true, false })
        {
            Tensor[] expected = LinearGrads(static (x, w, b) => nn.functional.linear(x, w, b), withBias);
            foreach (var (name, apply) in linears)
            {
                Tensor[] actual = LinearGrads(apply, withBias);
                for (int i = 0; i < expected.Length; i++)
                    Expect($"{name} ({(withBias ? "with" : "without")} bias), gradient {i}", expected[i], actual[i]);
            }
        }
    }

    private static Tensor[] LinearGrads(Func<Tensor, Tensor, Tensor?, Tensor> linear, bool withBias)
    {
        torch.manual_seed(Setup.Seed);
        Tensor x = randn(new long[] { 3, 4 }, device: Setup.Device, requires_grad: true);
        Tensor w = randn(new long[] { 5, 4 }, device: Setup.Device, requires_grad: true);
        Tensor? b = withBias ? randn(new long[] { 5 }, device: Setup.Device, requires_grad: true) : null;
        Tensor y = linear(x, w, b);
        (y * arange(y.numel(), dtype: y.dtype, device: y.device).reshape(y.shape)).sum().backward();
        return b is null ? new[] { x.grad!, w.grad! } : new[] { x.grad!, w.grad!, b.grad! };
    }

    /// <summary>Every row of the MLP benchmark gives the built-in model's parameter gradients, in both reset modes.</summary>
    private static void CheckMlp()
    {
        foreach (GradReset reset in new[] { GradReset.None, GradReset.Zero })
        {
            Tensor[] expected = MlpBenchmarks.Gradients(8, 16, reset, nameof(MlpBenchmarks.BuiltIn));
            foreach (string row in MlpBenchmarks.Rows)
            {
                Tensor[] actual = MlpBenchmarks.Gradients(8, 16, reset, row);
                for (int i = 0; i < expected.Length; i++)
                    Expect($"MLP {row} (grads reset {reset}), parameter {i}", expected[i], actual[i]);
            }
        }
    }

    private static void Expect(string what, Tensor expected, Tensor actual)
    {
        // Relative 1e-4: float32 sums in a different order (mm then add against addmm).
        if (!actual.allclose(expected, rtol: 1e-4, atol: 1e-5))
            throw new InvalidOperationException($"{what}: wrong gradient.\nexpected {Text(expected)}\nactual {Text(actual)}");
    }

    private static string Text(Tensor t) =>
        string.Join(", ", t.cpu().data<float>().ToArray().Select(v => v.ToString(CultureInfo.InvariantCulture)));
}
