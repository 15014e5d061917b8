// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using CustomAutograd.TorchSharpInternals;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd;

/// <summary>
/// Second-derivative checking, the counterpart of PyTorch's <c>torch.autograd.gradgradcheck</c>: runs
/// <see cref="GradCheck"/> on the function <c>(inputs, grad_outputs) -&gt; gradients of the inputs</c>, computed
/// by <see cref="Autograd.Grad"/> with <c>createGraph: true</c>. It checks that a Backward is itself correctly
/// differentiable: written with differentiable tensor operations, not detached, not
/// <see cref="AutogradFunctionOptions.OnceDifferentiable"/>. Accepts every form of custom function and any
/// function of TorchSharp operations, as <see cref="GradCheck"/> does, plus optional output gradients.
/// </summary>
/// <remarks>
/// In the result, inputs are numbered as the function's inputs followed by the output gradients (named
/// "input i" and "grad_outputs[k]"), and outputs are the gradients of the inputs that require grad, in order
/// (named "grad of input i"). An input the outputs do not depend on gets a zero gradient, which is not checked.
/// Everything else is as in <see cref="GradCheck"/>; a first-order backward that throws propagates its exception,
/// since it is part of the checked function here.
/// </remarks>
public static class GradGradCheck
{
    /// <summary>Checks the second derivatives of a function of several tensors with several results.</summary>
    /// <param name="function">The function; it receives the inputs in order, nulls included.</param>
    /// <param name="inputs">The point to check at; only inputs with <c>requires_grad</c> are checked, and null
    /// entries are passed to the function as null.</param>
    /// <param name="gradOutputs">One gradient per output (for outputs that do not require grad, any tensor;
    /// it is ignored); those with <c>requires_grad</c> are checked too. Null: random values in [-1, 1) with each
    /// output's shape, dtype and device, requiring grad (seeded by <see cref="GradCheckOptions.Seed"/>,
    /// non-contiguous with <see cref="GradCheckOptions.NonContiguousGradOutputs"/>).</param>
    /// <param name="options">Options; <see cref="GradCheckOptions.Default"/> when null.</param>
    /// <returns>The result; with <see cref="GradCheckOptions.RaiseException"/> (the default) a passed one.</returns>
    /// <exception cref="GradCheckException">The check failed and <see cref="GradCheckOptions.RaiseException"/> is set.</exception>
    /// <exception cref="ArgumentException">No input requires grad, or the output gradients do not match the outputs.</exception>
    public static GradCheckResult Check(Func<Tensor?[], Tensor[]> function, IReadOnlyList<Tensor?> inputs,
                                        IReadOnlyList<Tensor>? gradOutputs = null, GradCheckOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(function);
        ArgumentNullException.ThrowIfNull(inputs);
        options ??= GradCheckOptions.Default;
        options.Validate();

        using DisposeScope scope = torch.NewDisposeScope();
        int inputCount = inputs.Count;
        var differentiable = new List<int>();
        for (int i = 0; i < inputCount; i++)
        {
            if (inputs[i] is { requires_grad: true })
                differentiable.Add(i);
        }
        if (differentiable.Count == 0)
        {
            throw new ArgumentException(
                $"{nameof(GradGradCheck)} expects at least one input tensor to require gradient, but none of the {inputCount} does.",
                nameof(inputs));
        }
        int[] diffInputs = differentiable.ToArray();

        Tensor[] grads = gradOutputs is null ? MakeGradOutputs(function, inputs, options) : CopyList(gradOutputs);
        int outputCount = grads.Length;

        Tensor[] GradientFunction(Tensor?[] all)
        {
            Tensor?[] xs = all.AsSpan(0, inputCount).ToArray();
            Tensor[] outputs = function(xs)
                ?? throw new InvalidOperationException($"{nameof(GradGradCheck)}: the function returned null instead of an array of outputs.");
            if (outputs.Length != outputCount)
            {
                throw new ArgumentException(
                    $"The function returned {outputs.Length} outputs but there are {outputCount} output gradients.", nameof(gradOutputs));
            }
            var selected = new List<Tensor>();
            var selectedGrads = new List<Tensor>();
            for (int k = 0; k < outputs.Length; k++)
            {
                if (outputs[k] is { requires_grad: true } y)
                {
                    selected.Add(y);
                    selectedGrads.Add(all[inputCount + k] ?? throw new UnreachableException("An output gradient is never null."));
                }
            }
            if (selected.Count == 0)
                throw new InvalidOperationException($"{nameof(GradGradCheck)}: no output of the function requires grad.");
            Tensor[] differentiated = Array.ConvertAll(diffInputs, i => xs[i] ?? throw new UnreachableException("A differentiable input is never null."));
            Tensor?[] g = Autograd.Grad(selected, differentiated, selectedGrads, createGraph: true, allowUnused: true);
            var result = new Tensor[diffInputs.Length];
            for (int j = 0; j < diffInputs.Length; j++)
                result[j] = g[j] ?? torch.zeros_like(differentiated[j]);
            return result;
        }

        var all = new Tensor?[inputCount + outputCount];
        for (int i = 0; i < inputCount; i++)
            all[i] = inputs[i];
        grads.CopyTo(all, inputCount);

        string InputName(int i) => i < inputCount
            ? GradCheckEngine.DefaultInputName(i)
            : "grad_outputs[" + (i - inputCount).ToString(CultureInfo.InvariantCulture) + "]";
        string OutputName(int o) => "grad of input " + diffInputs[o].ToString(CultureInfo.InvariantCulture);

        return GradCheckEngine.Run(nameof(GradGradCheck), GradientFunction, all, options, InputName, OutputName);
    }

    /// <summary>Checks the second derivative of a function of one tensor.</summary>
    /// <param name="function">The function.</param>
    /// <param name="input">The point to check at; must require grad.</param>
    /// <param name="gradOutput">The output's gradient; null for a random one (see the general overload).</param>
    /// <param name="options">Options; <see cref="GradCheckOptions.Default"/> when null.</param>
    /// <returns>The result.</returns>
    /// <exception cref="GradCheckException">The check failed and <see cref="GradCheckOptions.RaiseException"/> is set.</exception>
    public static GradCheckResult Check(Func<Tensor, Tensor> function, Tensor input, Tensor? gradOutput = null,
                                        GradCheckOptions? options = null)
        => Check(FunctionForms.Of(function), new[] { input }, SingleGradOutput(gradOutput), options);

    /// <summary>Checks the second derivatives of a function of two tensors with one result.</summary>
    /// <param name="function">The function.</param>
    /// <param name="a">The first input.</param>
    /// <param name="b">The second input.</param>
    /// <param name="gradOutput">The output's gradient; null for a random one.</param>
    /// <param name="options">Options; <see cref="GradCheckOptions.Default"/> when null.</param>
    /// <returns>The result.</returns>
    /// <exception cref="GradCheckException">The check failed and <see cref="GradCheckOptions.RaiseException"/> is set.</exception>
    public static GradCheckResult Check(Func<Tensor, Tensor, Tensor> function, Tensor a, Tensor b, Tensor? gradOutput = null,
                                        GradCheckOptions? options = null)
        => Check(FunctionForms.Of(function), new[] { a, b }, SingleGradOutput(gradOutput), options);

    /// <summary>Checks that a custom function of one tensor has a correctly differentiable Backward.</summary>
    /// <param name="function">The custom function.</param>
    /// <param name="input">The point to check at; must require grad.</param>
    /// <param name="gradOutput">The output's gradient; null for a random one.</param>
    /// <param name="options">Options; <see cref="GradCheckOptions.Default"/> when null.</param>
    /// <returns>The result.</returns>
    /// <exception cref="GradCheckException">The check failed and <see cref="GradCheckOptions.RaiseException"/> is set.</exception>
    public static GradCheckResult Check(UnaryFunction function, Tensor input, Tensor? gradOutput = null, GradCheckOptions? options = null)
        => Check(FunctionForms.Of(function), new[] { input }, SingleGradOutput(gradOutput), options);

    /// <summary>Checks that a custom function of two tensors has a correctly differentiable Backward.</summary>
    /// <param name="function">The custom function.</param>
    /// <param name="a">The first input.</param>
    /// <param name="b">The second input.</param>
    /// <param name="gradOutput">The output's gradient; null for a random one.</param>
    /// <param name="options">Options; <see cref="GradCheckOptions.Default"/> when null.</param>
    /// <returns>The result.</returns>
    /// <exception cref="GradCheckException">The check failed and <see cref="GradCheckOptions.RaiseException"/> is set.</exception>
    public static GradCheckResult Check(BinaryFunction function, Tensor a, Tensor b, Tensor? gradOutput = null,
                                        GradCheckOptions? options = null)
        => Check(FunctionForms.Of(function), new[] { a, b }, SingleGradOutput(gradOutput), options);

    /// <summary>Checks that a custom function of three tensors has a correctly differentiable Backward, e.g.
    /// <c>GradGradCheck.Check(linear, x, w, null)</c> without its optional third input.</summary>
    /// <param name="function">The custom function.</param>
    /// <param name="a">The first input.</param>
    /// <param name="b">The second input.</param>
    /// <param name="c">The third input, or null (then not checked).</param>
    /// <param name="gradOutput">The output's gradient; null for a random one.</param>
    /// <param name="options">Options; <see cref="GradCheckOptions.Default"/> when null.</param>
    /// <returns>The result.</returns>
    /// <exception cref="GradCheckException">The check failed and <see cref="GradCheckOptions.RaiseException"/> is set.</exception>
    public static GradCheckResult Check(TernaryFunction function, Tensor a, Tensor b, Tensor? c, Tensor? gradOutput = null,
                                        GradCheckOptions? options = null)
        => Check(FunctionForms.Of(function), new[] { a, b, c }, SingleGradOutput(gradOutput), options);

    /// <summary>Checks that a custom function of any number of tensors has a correctly differentiable Backward.</summary>
    /// <param name="function">The custom function.</param>
    /// <param name="inputs">The point to check at; null entries are passed as null and not checked.</param>
    /// <param name="gradOutputs">One gradient per output; null for random ones.</param>
    /// <param name="options">Options; <see cref="GradCheckOptions.Default"/> when null.</param>
    /// <returns>The result.</returns>
    /// <exception cref="GradCheckException">The check failed and <see cref="GradCheckOptions.RaiseException"/> is set.</exception>
    public static GradCheckResult Check(MultiFunction function, IReadOnlyList<Tensor?> inputs, IReadOnlyList<Tensor>? gradOutputs = null,
                                        GradCheckOptions? options = null)
        => Check(FunctionForms.Of(function), inputs, gradOutputs, options);

    /// <summary>Checks that a custom function of one tensor with typed arguments has a correctly differentiable
    /// Backward, e.g. <c>GradGradCheck.Check(mulConstant, x, 5.0)</c>.</summary>
    /// <typeparam name="TArgs">The arguments' type.</typeparam>
    /// <param name="function">The custom function.</param>
    /// <param name="input">The point to check at; must require grad.</param>
    /// <param name="args">The arguments passed to every call (they get no gradient).</param>
    /// <param name="gradOutput">The output's gradient; null for a random one.</param>
    /// <param name="options">Options; <see cref="GradCheckOptions.Default"/> when null.</param>
    /// <returns>The result.</returns>
    /// <exception cref="GradCheckException">The check failed and <see cref="GradCheckOptions.RaiseException"/> is set.</exception>
    public static GradCheckResult Check<TArgs>(UnaryFunction<TArgs> function, Tensor input, TArgs args, Tensor? gradOutput = null,
                                               GradCheckOptions? options = null)
        => Check(FunctionForms.Of(function, args), new[] { input }, SingleGradOutput(gradOutput), options);

    /// <summary>Checks that a custom function of two tensors with typed arguments has a correctly differentiable Backward.</summary>
    /// <typeparam name="TArgs">The arguments' type.</typeparam>
    /// <param name="function">The custom function.</param>
    /// <param name="a">The first input.</param>
    /// <param name="b">The second input.</param>
    /// <param name="args">The arguments passed to every call.</param>
    /// <param name="gradOutput">The output's gradient; null for a random one.</param>
    /// <param name="options">Options; <see cref="GradCheckOptions.Default"/> when null.</param>
    /// <returns>The result.</returns>
    /// <exception cref="GradCheckException">The check failed and <see cref="GradCheckOptions.RaiseException"/> is set.</exception>
    public static GradCheckResult Check<TArgs>(BinaryFunction<TArgs> function, Tensor a, Tensor b, TArgs args, Tensor? gradOutput = null,
                                               GradCheckOptions? options = null)
        => Check(FunctionForms.Of(function, args), new[] { a, b }, SingleGradOutput(gradOutput), options);

    /// <summary>Checks that a custom function of three tensors (the third optional) with typed arguments has a
    /// correctly differentiable Backward.</summary>
    /// <typeparam name="TArgs">The arguments' type.</typeparam>
    /// <param name="function">The custom function.</param>
    /// <param name="a">The first input.</param>
    /// <param name="b">The second input.</param>
    /// <param name="c">The third input, or null (then not checked).</param>
    /// <param name="args">The arguments passed to every call.</param>
    /// <param name="gradOutput">The output's gradient; null for a random one.</param>
    /// <param name="options">Options; <see cref="GradCheckOptions.Default"/> when null.</param>
    /// <returns>The result.</returns>
    /// <exception cref="GradCheckException">The check failed and <see cref="GradCheckOptions.RaiseException"/> is set.</exception>
    public static GradCheckResult Check<TArgs>(TernaryFunction<TArgs> function, Tensor a, Tensor b, Tensor? c, TArgs args,
                                               Tensor? gradOutput = null, GradCheckOptions? options = null)
        => Check(FunctionForms.Of(function, args), new[] { a, b, c }, SingleGradOutput(gradOutput), options);

    /// <summary>Checks that a custom function of any number of tensors with typed arguments has a correctly
    /// differentiable Backward.</summary>
    /// <typeparam name="TArgs">The arguments' type.</typeparam>
    /// <param name="function">The custom function.</param>
    /// <param name="inputs">The point to check at; null entries are passed as null and not checked.</param>
    /// <param name="args">The arguments passed to every call.</param>
    /// <param name="gradOutputs">One gradient per output; null for random ones.</param>
    /// <param name="options">Options; <see cref="GradCheckOptions.Default"/> when null.</param>
    /// <returns>The result.</returns>
    /// <exception cref="GradCheckException">The check failed and <see cref="GradCheckOptions.RaiseException"/> is set.</exception>
    public static GradCheckResult Check<TArgs>(MultiFunction<TArgs> function, IReadOnlyList<Tensor?> inputs, TArgs args,
                                               IReadOnlyList<Tensor>? gradOutputs = null, GradCheckOptions? options = null)
        => Check(FunctionForms.Of(function, args), inputs, gradOutputs, options);

    private static Tensor[]? SingleGradOutput(Tensor? gradOutput) => gradOutput is null ? null : new[] { gradOutput };

    private static Tensor[] CopyList(IReadOnlyList<Tensor> tensors)
    {
        var copy = new Tensor[tensors.Count];
        for (int k = 0; k < copy.Length; k++)
            copy[k] = tensors[k] ?? throw new ArgumentNullException(nameof(tensors), $"gradOutputs[{k}] is null.");
        return copy;
    }

    // PyTorch's default output gradients: uniform in [-1, 1) with each output's shape, dtype and device,
    // requiring grad; a float64 placeholder for an output that does not require grad.
    private static Tensor[] MakeGradOutputs(Func<Tensor?[], Tensor[]> function, IReadOnlyList<Tensor?> inputs, GradCheckOptions options)
    {
        var xs = new Tensor?[inputs.Count];
        for (int i = 0; i < xs.Length; i++)
            xs[i] = inputs[i];
        Tensor[] outputs;
        using (torch.enable_grad())
        {
            outputs = function(xs)
                ?? throw new InvalidOperationException($"{nameof(GradGradCheck)}: the function returned null instead of an array of outputs.");
        }
        using Generator? generator = options.Seed is long seed ? new Generator(unchecked((ulong)seed), torch.CPU) : null;
        var grads = new Tensor[outputs.Length];
        for (int k = 0; k < outputs.Length; k++)
        {
            Tensor y = outputs[k] ?? throw new InvalidOperationException($"{nameof(GradGradCheck)}: the function returned null as output {k}.");
            if (!y.requires_grad || !y.is_floating_point())
            {
                grads[k] = torch.zeros(y.shape, dtype: ScalarType.Float64, device: y.device);
                continue;
            }
            long[] shape = y.shape;
            bool nonContiguous = options.NonContiguousGradOutputs && shape.Length > 0 && y.numel() > 0;
            long[] drawn = (long[])shape.Clone();
            if (nonContiguous)
                drawn[^1] *= 2;
            Tensor values = torch.rand(drawn, dtype: ScalarType.Float64, generator: generator).mul_(KeptScalars.Two).sub_(KeptScalars.One);
            Tensor g = torch.empty(drawn, dtype: y.dtype, device: y.device);
            g.copy_(values);
            if (nonContiguous)
                g = g.slice(shape.Length - 1, 0, drawn[^1], 2);
            grads[k] = g.requires_grad_(true);
        }
        return grads;
    }
}
