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
        Tensor x = randn(new long[] { 4, 5 }, dtype: ScalarType.Float32, requires_grad: true);

        Tensor expected = Grad(x, static t => t.clone());
        Expect("CustomAutograd identity", expected, Grad(x, static t => Functions.Identity.Apply(t)));
        Expect("TorchSharp identity", expected, Grad(x, Functions.TorchSharpIdentity));

        expected = Grad(x, static t => t.relu());
        Expect("CustomAutograd ReLU", expected, Grad(x, static t => Functions.Relu.Apply(t)));
        Expect("TorchSharp ReLU", expected, Grad(x, Functions.TorchSharpRelu));

        Tensor chained = Grad(x, static t =>
        {
            for (int i = 0; i < 100; i++)
                t = i % 2 == 0 ? Functions.Identity.Apply(t) : Functions.TorchSharpIdentity(t);
            return t;
        });
        Expect("chain of identities", Grad(x, static t => t.clone()), chained);

        output.WriteLine($"TorchSharp {typeof(torch).Assembly.GetName().Version} loaded; gradients of all functions under test checked.");
    }

    private static Tensor Grad(Tensor x, Func<Tensor, Tensor> f)
    {
        x.grad?.zero_();
        (f(x) * arange(x.numel(), dtype: x.dtype).reshape(x.shape)).sum().backward();
        return x.grad!.clone();
    }

    private static void Expect(string what, Tensor expected, Tensor actual)
    {
        if (!actual.allclose(expected))
            throw new InvalidOperationException($"{what}: wrong gradient.\nexpected {Text(expected)}\nactual {Text(actual)}");
    }

    private static string Text(Tensor t) =>
        string.Join(", ", t.data<float>().ToArray().Select(v => v.ToString(CultureInfo.InvariantCulture)));
}
