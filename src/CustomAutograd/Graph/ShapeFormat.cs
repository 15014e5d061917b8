// SPDX-License-Identifier: MIT
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace CustomAutograd.Graph;

// The one formatter of shapes, strides and element indices in the library's messages: [2, 3],
// [] for a scalar, invariant culture.
internal static class ShapeFormat
{
    internal static string Format(IReadOnlyList<long> sizes)
    {
        var sb = new StringBuilder("[");
        for (int i = 0; i < sizes.Count; i++)
        {
            if (i > 0)
                sb.Append(", ");
            sb.Append(sizes[i].ToString(CultureInfo.InvariantCulture));
        }
        return sb.Append(']').ToString();
    }
}
